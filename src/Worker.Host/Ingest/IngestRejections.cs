using Worker.Contracts;
using Worker.Host.Dispatch;
using Worker.Host.Relay;

namespace Worker.Host.Ingest;

/// <summary>
/// How ingest words and stores what it rejects, so that the prospect rows, the request's rejection reason and the
/// event of a request that completes at once say the same thing.
/// </summary>
internal static class IngestRejections
{
    /// <summary>
    /// The ids stored as Rejected, in stored order: the valid ids of a request rejected as a whole, then the ids
    /// rejected on their own.
    /// </summary>
    public static IEnumerable<RejectedOutcome> Outcomes(ValidatedRequest request)
    {
        if (request.IsRejected)
        {
            foreach (var id in request.ValidIds)
            {
                yield return new RejectedOutcome(id, RequestRejectedCode, RequestRejectedMessage);
            }
        }

        foreach (var rejected in request.RejectedIds)
        {
            yield return new RejectedOutcome(rejected.CrmProspectId, InvalidProspectIdCode, rejected.Reason);
        }
    }

    /// <summary>
    /// <c>assignment_requests.rejection_reason</c>: the request-level errors one per line, the reason a request has no
    /// valid id, or null for a request with ids to send.
    /// </summary>
    public static string? RejectionReason(ValidatedRequest request)
    {
        if (request.IsRejected)
        {
            return string.Join('\n', request.Errors);
        }

        return request.ValidIds.Count == 0 ? NoValidIdReason(request) : null;
    }

    /// <summary>The event of a request that completes at ingest: status Rejected, one outcome per unique id.</summary>
    /// <param name="request">A request with <see cref="ValidatedRequest.CompletesAtOnce"/>.</param>
    /// <param name="now">The ingest commit time (UTC).</param>
    public static FlowAssignmentCompleted CompletedEvent(ValidatedRequest request, DateTimeOffset now) =>
        FlowAssignmentCompletedFactory.RejectedAtIngest(
            request.RequestId, request.FlowId, request.OwnerEmail, now, Outcomes(request), request.IsRejected ? request.Errors : [NoValidIdReason(request)],
            PriorityLanes.ToWire(request.Priority));

    private static string NoValidIdReason(ValidatedRequest request) =>
        $"crmProspectIds: none of the {request.RejectedIds.Count} unique ids is valid (each must be 1 to {AssignmentValidator.MaxProspectIdLength} characters without control characters).";

    /// <summary>Error code of a valid id of a request rejected as a whole.</summary>
    public const string RequestRejectedCode = "RequestRejected";

    /// <summary>Error code of an id rejected on its own.</summary>
    public const string InvalidProspectIdCode = "InvalidProspectId";

    private const string RequestRejectedMessage = "The request was rejected as a whole (see its rejection reason); this id was not sent.";
}
