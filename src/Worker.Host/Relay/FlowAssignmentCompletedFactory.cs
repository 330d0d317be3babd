using Worker.Contracts;
using Worker.Host.Dispatch;
using Worker.Persistence.Entities;

namespace Worker.Host.Relay;

/// <summary>One rejected CRM prospect id of a request that completes at ingest, as its prospect row stores it.</summary>
/// <param name="CrmProspectId">The id as stored.</param>
/// <param name="ErrorCode">The worker's code: <c>RequestRejected</c> (the request as a whole) or <c>InvalidProspectId</c>.</param>
/// <param name="ErrorMessage">The reason, naming the field and the limit.</param>
internal sealed record RejectedOutcome(string CrmProspectId, string ErrorCode, string ErrorMessage);

/// <summary>
/// The one place a <see cref="FlowAssignmentCompleted"/> is built (serialized into the outbox by <see cref="OutboxEvents"/>):
/// by ingest for a request that completes when stored, by dispatch for a request whose last prospect got its outcome.
/// Both describe the request as its rows hold it, so the event always matches the table.
/// </summary>
internal static class FlowAssignmentCompletedFactory
{
    /// <summary>
    /// The event of a request that completes at ingest: status Rejected, received and completed at <paramref name="at"/>,
    /// one Rejected outcome per stored id.
    /// </summary>
    /// <param name="requestId">The publisher's requestId, as received.</param>
    /// <param name="flowId">The flowId as stored.</param>
    /// <param name="ownerEmail">The owner email as stored (trimmed, original case).</param>
    /// <param name="at">The ingest commit time (UTC).</param>
    /// <param name="rejected">The request's ids in stored order, each with its code and reason.</param>
    /// <param name="errors">Request-level problems, one per entry (field, value shape, limit).</param>
    /// <param name="priority">The request's priority as the wire names it (<c>high</c>, <c>normal</c>, <c>bulk</c>); null when
    /// the value received was unknown.</param>
    public static FlowAssignmentCompleted RejectedAtIngest(
        string requestId, string flowId, string ownerEmail, DateTimeOffset at, IEnumerable<RejectedOutcome> rejected, IReadOnlyList<string> errors,
        string? priority) => new(
        requestId,
        flowId,
        ownerEmail,
        RequestStatus.Rejected,
        at,
        at,
        [.. rejected.Select(r => new ProspectOutcome(r.CrmProspectId, ProspectStatus.Rejected, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage))],
        errors)
    {
        Priority = priority,
    };

    /// <summary>
    /// The event of a complete request from its stored rows: one outcome per prospect row in the order of
    /// <see cref="AssignmentRequest.Prospects"/>, the errors from <see cref="AssignmentRequest.RejectionReason"/> (one per line).
    /// A request without a final status reads as Failed, a prospect without a final status as Failed.
    /// </summary>
    /// <param name="request">The request with its <see cref="AssignmentRequest.Prospects"/> loaded.</param>
    public static FlowAssignmentCompleted FromStored(AssignmentRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new FlowAssignmentCompleted(
            request.RequestId,
            request.FlowId,
            request.OwnerEmail,
            request.Status ?? RequestStatus.Failed,
            request.ReceivedAt,
            request.CompletedAt ?? request.ReceivedAt,
            [.. request.Prospects.Select(p => new ProspectOutcome(
                p.CrmProspectId,
                ToProspectStatus(p.Status),
                p.FlowInstanceId,
                p.FlowInstanceStatus,
                p.ErrorCode,
                p.ErrorMessage,
                p.GongRequestId))],
            string.IsNullOrEmpty(request.RejectionReason) ? [] : request.RejectionReason.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Priority = PriorityLanes.ToWire(request.Priority),
        };
    }

    private static ProspectStatus ToProspectStatus(ProspectAssignmentStatus status) => status switch
    {
        ProspectAssignmentStatus.Assigned => ProspectStatus.Assigned,
        ProspectAssignmentStatus.NotAssigned => ProspectStatus.NotAssigned,
        ProspectAssignmentStatus.Rejected => ProspectStatus.Rejected,
        _ => ProspectStatus.Failed,
    };
}
