namespace Gong.Simulator;

/// <summary>One call to a Gong endpoint as the simulator saw it (returned by <c>GET /_sim/calls</c>).</summary>
/// <param name="Sequence">1-based order in which calls finished being logged; page with <c>?after=</c>.</param>
/// <param name="Time">When the call arrived (after any <see cref="FaultOptions.ArrivalJitterMs"/> and
/// <see cref="FaultOptions.NewConnectionDelayMs"/>) and was counted against the rate limit; UTC, from the simulator's TimeProvider.</param>
/// <param name="Endpoint"><c>assign</c> or <c>lookup</c>.</param>
/// <param name="FlowId">Flow id of an assign call, when the body named one.</param>
/// <param name="OwnerEmail">Owner email of an assign call, when the body named one.</param>
/// <param name="IdsCount">Number of ids in the body (duplicates included).</param>
/// <param name="Ids">The ids in the body, in order.</param>
/// <param name="Status">HTTP status sent, or 0 when the connection was reset instead.</param>
/// <param name="RetryAfter">Retry-After header value sent with a 429, if any.</param>
/// <param name="Fault">Injected fault that shaped the answer (FaultKind name), or null.</param>
/// <param name="Committed">Whether assignments of this call were committed (true for 200 and after-commit faults).</param>
/// <param name="RequestId">Gong requestId of the answer.</param>
/// <param name="DurationMs">Time from arrival until the answer was decided, in milliseconds (excludes a timeout-after-commit delay).</param>
/// <param name="Assigned">Prospects assigned (assign) or open instances returned (lookup).</param>
/// <param name="NotAssigned">Prospects in <c>prospectsNotAssigned</c>.</param>
/// <param name="Error">Error message sent, for non-200 answers.</param>
/// <param name="SelfCausedRateLimited">For a 429 of the rate limit: true when this client's own accepted calls alone
/// already filled the one-second window (its pacing caused it), false when another client's calls
/// (<see cref="FaultOptions.ForeignCallsPerSecond"/>) or the daily budget did, or the 429 was scripted; null otherwise.</param>
public sealed record CallRecord(
    long Sequence,
    DateTimeOffset Time,
    string Endpoint,
    string? FlowId,
    string? OwnerEmail,
    int IdsCount,
    IReadOnlyList<string> Ids,
    int Status,
    string? RetryAfter,
    string? Fault,
    bool Committed,
    string RequestId,
    double DurationMs,
    int Assigned,
    int NotAssigned,
    string? Error,
    bool? SelfCausedRateLimited = null);

/// <summary>Aggregates over the call log and the assignment book (returned by <c>GET /_sim/stats</c>).</summary>
/// <param name="TotalCalls">Calls to the Gong endpoints.</param>
/// <param name="CallsByStatus">Calls per HTTP status ("0" = connection reset).</param>
/// <param name="CallsByEndpoint">Calls per endpoint (<c>assign</c>, <c>lookup</c>).</param>
/// <param name="MaxCallsInAnyOneSecond">Most calls (any status) that arrived within any one-second window.</param>
/// <param name="MaxAcceptedCallsInAnyOneSecond">Same, counting only calls not refused by 401 or 429.</param>
/// <param name="RateLimitedCalls">Calls answered 429.</param>
/// <param name="DailyCallsUsed">Calls counted against the daily limit in the current UTC day.</param>
/// <param name="AssignmentsCount">Flow instances created by assign calls.</param>
/// <param name="SeededAssignmentsCount">Flow instances created by seeding.</param>
/// <param name="ProspectsNotAssigned">Entries returned in <c>prospectsNotAssigned</c> in all calls.</param>
/// <param name="DuplicateAssignAttempts">Assign attempts for a (prospect, flow) that already had an open instance.</param>
/// <param name="DuplicateOfApiAssignmentAttempts">Those of them whose instance was created by an earlier assign call (not a seed): a client that assigned twice.</param>
/// <param name="CallsWithDuplicateIds">Assign calls whose body held the same id more than once.</param>
/// <param name="LargestAssignBatch">Most ids in one assign call.</param>
/// <param name="SelfCausedRateLimited">429s of the per-second limit that this client's own calls caused (its own
/// accepted calls alone filled the window): a pacing defect. The rest of <paramref name="RateLimitedCalls"/> came from
/// another client's share, the daily budget or a scripted fault.</param>
/// <param name="ForeignCalls">Calls another client made (<see cref="FaultOptions.ForeignCallsPerSecond"/>), accepted or not.</param>
/// <param name="ForeignRateLimited">Of those, calls refused because the window was full.</param>
public sealed record SimulatorStats(
    int TotalCalls,
    IReadOnlyDictionary<string, int> CallsByStatus,
    IReadOnlyDictionary<string, int> CallsByEndpoint,
    int MaxCallsInAnyOneSecond,
    int MaxAcceptedCallsInAnyOneSecond,
    int RateLimitedCalls,
    int DailyCallsUsed,
    int AssignmentsCount,
    int SeededAssignmentsCount,
    int ProspectsNotAssigned,
    int DuplicateAssignAttempts,
    int DuplicateOfApiAssignmentAttempts,
    int CallsWithDuplicateIds,
    int LargestAssignBatch,
    int SelfCausedRateLimited = 0,
    int ForeignCalls = 0,
    int ForeignRateLimited = 0);
