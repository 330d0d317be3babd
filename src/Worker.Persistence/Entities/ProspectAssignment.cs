namespace Worker.Persistence.Entities;

/// <summary>
/// The results table ops watch (<c>prospect_assignments</c>): one row per (request, unique CRM prospect id).
/// </summary>
public sealed class ProspectAssignment
{
    /// <summary>Surrogate key.</summary>
    public long Id { get; set; }

    /// <summary>FK to <see cref="AssignmentRequest.Id"/>.</summary>
    public long AssignmentRequestId { get; set; }

    /// <summary>The owning request.</summary>
    public AssignmentRequest? AssignmentRequest { get; set; }

    /// <summary>CRM id as received (1–255 characters when valid).</summary>
    public required string CrmProspectId { get; set; }

    /// <summary>Gong flow id (denormalised from the request: the grouping key).</summary>
    public required string FlowId { get; set; }

    /// <summary>Owner email, trimmed and lower-cased (denormalised: the grouping key).</summary>
    public required string OwnerEmail { get; set; }

    /// <summary>Current state.</summary>
    public ProspectAssignmentStatus Status { get; set; }

    /// <summary>The request's priority lane (copied so the claim orders by it in the pending index); Normal for rows
    /// stored before priorities existed.</summary>
    public ProspectPriority Priority { get; set; } = ProspectPriority.Normal;

    /// <summary>Gong flow instance id when Assigned.</summary>
    public string? FlowInstanceId { get; set; }

    /// <summary>Gong flow instance status when Assigned (opaque string).</summary>
    public string? FlowInstanceStatus { get; set; }

    /// <summary>Gong errorCode or the worker's error code.</summary>
    public string? ErrorCode { get; set; }

    /// <summary>Gong's message or the worker's reason.</summary>
    public string? ErrorMessage { get; set; }

    /// <summary>Gong requestId of the deciding call.</summary>
    public string? GongRequestId { get; set; }

    /// <summary>True when the outcome came from the lookup endpoint after an outcome-unknown call.</summary>
    public bool Reconciled { get; set; }

    /// <summary>
    /// True when an earlier call carrying this prospect ended with outcome unknown (timeout, reset, 5xx, expired lease)
    /// and no lookup has settled it yet: the next batch must ask Gong's lookup before resending it.
    /// </summary>
    public bool ReconcileFirst { get; set; }

    /// <summary>Gong calls that carried this prospect and ended in UnexpectedError or outcome unknown (bounded).</summary>
    public int Attempts { get; set; }

    /// <summary>The dispatch batch that holds (or last held) this prospect.</summary>
    public Guid? BatchId { get; set; }

    /// <summary>Earliest time the prospect may be dispatched (UTC); later than <see cref="CreatedAt"/> after a retryable error.</summary>
    public DateTimeOffset AvailableAt { get; set; }

    /// <summary>
    /// The requestId of the re-drive that sends this (final, Failed or NotAssigned) prospect again, or null. Set once: a row
    /// already re-driven is never selected again, so repeating a re-drive adds nothing.
    /// </summary>
    public string? RedrivenByRequestId { get; set; }

    /// <summary>When the row was stored (UTC).</summary>
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>Last change (UTC).</summary>
    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>When the final outcome was recorded (UTC), or null.</summary>
    public DateTimeOffset? CompletedAt { get; set; }
}
