using Worker.Contracts;

namespace Worker.Persistence.Entities;

/// <summary>
/// One row per publisher requestId (table <c>assignment_requests</c>). The unique index on
/// <see cref="RequestId"/> is what makes ingest idempotent when two consumers receive duplicates at once.
/// </summary>
public sealed class AssignmentRequest
{
    /// <summary>Surrogate key.</summary>
    public long Id { get; set; }

    /// <summary>The publisher's idempotency key (1–128 printable characters; a rejected request may carry a truncated form).</summary>
    public required string RequestId { get; set; }

    /// <summary>Gong flow id as received (digits only when valid).</summary>
    public required string FlowId { get; set; }

    /// <summary>Owner email, trimmed, original case (shown in events).</summary>
    public required string OwnerEmail { get; set; }

    /// <summary>Owner email, trimmed and lower-cased: the grouping key with <see cref="FlowId"/>.</summary>
    public required string OwnerEmailNormalized { get; set; }

    /// <summary>Null while prospects are outstanding; the final status once every prospect has an outcome.</summary>
    public RequestStatus? Status { get; set; }

    /// <summary>Priority lane as received (Normal when absent, and for requests stored before priorities existed);
    /// null only when the request was Rejected for an unknown priority value.</summary>
    public ProspectPriority? Priority { get; set; } = ProspectPriority.Normal;

    /// <summary>Unique prospect ids in the request (after collapsing duplicates), including rejected ids.</summary>
    public int ProspectCount { get; set; }

    /// <summary>Prospects still without a final outcome; the request completes when this reaches 0.</summary>
    public int PendingCount { get; set; }

    /// <summary>Final outcome counts (maintained as outcomes are recorded).</summary>
    public int AssignedCount { get; set; }

    /// <summary>Prospects Gong declined.</summary>
    public int NotAssignedCount { get; set; }

    /// <summary>Prospects the worker could not get a trusted answer for.</summary>
    public int FailedCount { get; set; }

    /// <summary>Prospect ids rejected as invalid input.</summary>
    public int RejectedCount { get; set; }

    /// <summary>SHA-256 (hex, 64 chars) of the canonical request content: same requestId + different hash is refused.</summary>
    public required string ContentHash { get; set; }

    /// <summary>For a Rejected request: every validation problem, one per line (field, value shape, limit).</summary>
    public string? RejectionReason { get; set; }

    /// <summary>When the worker stored the request (UTC).</summary>
    public DateTimeOffset ReceivedAt { get; set; }

    /// <summary>When the last prospect got its final outcome (UTC), or null.</summary>
    public DateTimeOffset? CompletedAt { get; set; }

    /// <summary>
    /// For a re-drive (requestId <c>redrive:&lt;generation&gt;:&lt;hash&gt;</c>, made by the <c>redrive</c> subcommand): the
    /// requestId of the request whose Failed / NotAssigned prospects it sends again; null for a publisher's request.
    /// </summary>
    public string? RedriveOfRequestId { get; set; }

    /// <summary>The request's prospect rows.</summary>
    public List<ProspectAssignment> Prospects { get; set; } = [];
}
