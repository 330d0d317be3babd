namespace Worker.Host.Operations;

/// <summary>
/// What the <c>status</c> subcommand prints: backlog per (flow, owner) group, outcomes and Gong calls of the last hour,
/// the shared rate gate and the outbox, read straight from the tables (no view needed). Read by
/// <see cref="StatusReportReader"/>, written by <see cref="StatusReportRenderer"/>.
/// </summary>
/// <param name="Now">When the report was read (UTC).</param>
/// <param name="Groups">Groups with Pending or InFlight prospects, oldest pending first.</param>
/// <param name="Outcomes">Final outcomes reached in the last hour, by status and error code.</param>
/// <param name="Calls">Gong calls of the last hour.</param>
/// <param name="Gate">The shared rate gate, or null when its row is missing (database not migrated).</param>
/// <param name="OutboxUnpublished">Outbox rows not yet published.</param>
/// <param name="OldestUnpublished">Creation time of the oldest unpublished outbox row.</param>
/// <param name="ExpiredLeases">Claimed batches whose lease ran out without completing (a replica died mid-batch).</param>
/// <param name="DailyCallLimit">Gong's daily call budget (<c>Gong:DailyCallLimit</c>, default 10,000).</param>
public sealed record StatusReport(
    DateTimeOffset Now,
    IReadOnlyList<BacklogGroup> Groups,
    IReadOnlyList<OutcomeCount> Outcomes,
    CallSummary Calls,
    RateGateState? Gate,
    long OutboxUnpublished,
    DateTimeOffset? OldestUnpublished,
    long ExpiredLeases,
    int DailyCallLimit)
{
    /// <summary>Backlog, oldest age and throughput per priority lane (empty: not shown).</summary>
    public IReadOnlyList<PriorityLaneFigures> Lanes { get; init; } = [];
}

/// <summary>Backlog of one (flow, owner) group.</summary>
/// <param name="FlowId">Gong flow id.</param>
/// <param name="OwnerEmail">Owner email (lower-cased, in clear: mask before showing).</param>
/// <param name="Pending">Pending prospects.</param>
/// <param name="InFlight">InFlight prospects (claimed in a batch).</param>
/// <param name="OldestPending">Arrival of the oldest Pending prospect, or null when none is Pending.</param>
public sealed record BacklogGroup(string FlowId, string OwnerEmail, long Pending, long InFlight, DateTimeOffset? OldestPending);

/// <summary>Final outcomes of one status and error code.</summary>
/// <param name="Status">Assigned, NotAssigned, Failed or Rejected.</param>
/// <param name="ErrorCode">Gong's or the worker's error code; empty when none.</param>
/// <param name="Count">Prospects.</param>
public sealed record OutcomeCount(string Status, string ErrorCode, long Count);

/// <summary>Gong calls in a period (from <c>gong_calls</c>).</summary>
/// <param name="AssignCalls">Calls to the assign endpoint.</param>
/// <param name="MeanFill">Mean prospects per assign call (0 when none).</param>
/// <param name="LookupCalls">Calls to other endpoints (the reconciliation lookup).</param>
/// <param name="Throttled">Calls answered 429.</param>
/// <param name="NotAnswered">Calls whose outcome class is not Answered.</param>
public sealed record CallSummary(long AssignCalls, double MeanFill, long LookupCalls, long Throttled, long NotAnswered);

/// <summary>The shared rate gate row.</summary>
/// <param name="BlockedUntil">No call may start before this instant (a 429's Retry-After), or null.</param>
/// <param name="BlockedReason">Why the gate is blocked.</param>
/// <param name="Day">The day <paramref name="DayCallCount"/> counts.</param>
/// <param name="DayCallCount">Calls taken on <paramref name="Day"/>.</param>
/// <param name="Controller">The allowed rate, window margin and learned batch limit; null when not read.</param>
public sealed record RateGateState(DateTimeOffset? BlockedUntil, string? BlockedReason, DateOnly Day, int DayCallCount, RateGateController? Controller = null);

/// <summary>What the shared gate has learned about Gong's door.</summary>
/// <param name="AllowedRate">Calls per second allowed now, or null for the configured <c>Gong:RequestsPerSecond</c>.</param>
/// <param name="RateReason">configured, throttled (a 429 cut it) or climbing.</param>
/// <param name="RateChangedAt">When the allowed rate last changed.</param>
/// <param name="MarginSeconds">Window margin of the latest call (seconds).</param>
/// <param name="LearnedBatchLimit">Prospects per call Gong accepts, learned from a 400; null when none.</param>
/// <param name="BatchLimitLearnedAt">When it was learned.</param>
/// <param name="BatchLimitReason">Gong's message or the bisection that proved it.</param>
/// <param name="BatchLimitMaxBatchSize">The configured MaxBatchSize it was learned under (another one forgets it).</param>
public sealed record RateGateController(
    double? AllowedRate,
    string? RateReason,
    DateTimeOffset? RateChangedAt,
    double? MarginSeconds,
    int? LearnedBatchLimit,
    DateTimeOffset? BatchLimitLearnedAt,
    string? BatchLimitReason,
    int? BatchLimitMaxBatchSize);
