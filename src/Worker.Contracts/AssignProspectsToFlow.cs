namespace Worker.Contracts;

/// <summary>
/// Command: put CRM prospects (contacts or leads) into one Gong Engage flow, owned by one Gong user.
/// Published to the exchange <c>Worker.Contracts:AssignProspectsToFlow</c> as a MassTransit envelope
/// or as plain camelCase JSON with <c>content_type: application/json</c>.
/// </summary>
/// <remarks>
/// Wire contract (a breaking change if altered; schema in <c>contracts/</c>):
/// <list type="bullet">
/// <item><see cref="RequestId"/>: the publisher's idempotency key, 1 to 128 printable characters.</item>
/// <item><see cref="FlowId"/>: Gong flow id, digits only, kept as a string (ids exceed 2^53).</item>
/// <item><see cref="FlowInstanceOwnerEmail"/>: a valid address; compared case-insensitively after trimming.</item>
/// <item><see cref="CrmProspectIds"/>: 1 to <c>MaxProspectsPerRequest</c> (default 10,000) ids, each 1 to
/// 255 characters without control characters; duplicates collapse to one outcome.</item>
/// <item><see cref="Priority"/>: optional lane, <c>high</c>, <c>normal</c> (when absent or null) or <c>bulk</c>.</item>
/// </list>
/// Properties are nullable because non-.NET publishers may omit them or send nulls; the worker validates
/// and answers with a <see cref="FlowAssignmentCompleted"/> of status Rejected instead of throwing.
/// </remarks>
/// <param name="RequestId">Idempotency key chosen by the publisher (1–128 printable characters).</param>
/// <param name="FlowId">Gong Engage flow id (digits only).</param>
/// <param name="FlowInstanceOwnerEmail">Email of the Gong user who owns the flow instance and its to-dos.</param>
/// <param name="CrmProspectIds">CRM ids of the contacts or leads to assign (1–10,000 by default).</param>
public sealed record AssignProspectsToFlow(
    string? RequestId,
    string? FlowId,
    string? FlowInstanceOwnerEmail,
    IReadOnlyList<string?>? CrmProspectIds)
{
    /// <summary>
    /// Optional priority lane: <c>high</c> (a hot lead: its group is served first, with a shorter batch delay and a
    /// reserve of the daily budget), <c>normal</c> (the default when absent or null) or <c>bulk</c> (campaigns: served
    /// after the others, but while bulk work is ready never below <c>Dispatch:BulkMinimumShare</c> of each replica's
    /// batches). Exact lower-case values only; any other value rejects the request with an error naming
    /// <c>priority</c>. Not part of the request's identity:
    /// the same requestId sent again with another priority is a duplicate of the stored request, whose priority stands.
    /// </summary>
    /// <remarks>An init-only property rather than a positional parameter, so publishers compiled against the earlier
    /// four-parameter constructor keep working unchanged.</remarks>
    public string? Priority { get; init; }
}
