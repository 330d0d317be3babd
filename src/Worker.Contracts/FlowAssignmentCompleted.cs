namespace Worker.Contracts;

/// <summary>
/// Event: every prospect of one <see cref="AssignProspectsToFlow"/> request has a final outcome.
/// Published once per request to the exchange <c>Worker.Contracts:FlowAssignmentCompleted</c>,
/// at least once: the MessageId is the outbox row id, so consumers drop duplicates by MessageId.
/// </summary>
/// <param name="RequestId">The publisher's requestId, as received.</param>
/// <param name="FlowId">Gong flow id, as received.</param>
/// <param name="FlowInstanceOwnerEmail">Owner email, trimmed.</param>
/// <param name="Status">Overall result of the request.</param>
/// <param name="ReceivedAt">When the worker stored the request (UTC).</param>
/// <param name="CompletedAt">When the last prospect got its final outcome (UTC).</param>
/// <param name="Outcomes">One outcome per unique CRM prospect id of the request (duplicates collapsed).</param>
/// <param name="Errors">For a Rejected request: every problem found (field, value shape, limit); otherwise empty.</param>
public sealed record FlowAssignmentCompleted(
    string RequestId,
    string FlowId,
    string FlowInstanceOwnerEmail,
    RequestStatus Status,
    DateTimeOffset ReceivedAt,
    DateTimeOffset CompletedAt,
    IReadOnlyList<ProspectOutcome> Outcomes,
    IReadOnlyList<string>? Errors = null)
{
    /// <summary>
    /// The request's priority lane as stored: <c>high</c>, <c>normal</c> (also for requests that sent none) or
    /// <c>bulk</c>; null only when the request was Rejected because its priority was not one of these.
    /// </summary>
    public string? Priority { get; init; }
}
