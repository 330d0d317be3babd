namespace Gong.Simulator;

/// <summary>
/// Faults the simulator injects. Set at start (<see cref="SimulatorOptions.Faults"/>) and replaced as a whole at
/// runtime by <c>PUT /_sim/faults</c>. Rates are probabilities per assign call in [0, 1], rolled with the
/// simulator's seeded random source; at most one random fault applies to a call.
/// </summary>
public sealed class FaultOptions
{
    /// <summary>Minimum added latency per call, in milliseconds (uniform between min and max).</summary>
    public int LatencyMinMs { get; set; }

    /// <summary>Maximum added latency per call, in milliseconds.</summary>
    public int LatencyMaxMs { get; set; }

    /// <summary>Alternative to min/max: mean latency in milliseconds (uniform in mean ± jitter). Wins when set.</summary>
    public int? LatencyMeanMs { get; set; }

    /// <summary>Jitter around <see cref="LatencyMeanMs"/>, in milliseconds.</summary>
    public int LatencyJitterMs { get; set; }

    /// <summary>Extra latency per prospect of an assign call, in milliseconds (Gong reads each prospect from the CRM).</summary>
    public double LatencyPerProspectMs { get; set; }

    /// <summary>Probability of a 5xx before anything is committed.</summary>
    public double ErrorBeforeCommitRate { get; set; }

    /// <summary>Probability of a 5xx after the assignments were committed.</summary>
    public double ErrorAfterCommitRate { get; set; }

    /// <summary>Probability of a connection reset after the assignments were committed.</summary>
    public double ResetAfterCommitRate { get; set; }

    /// <summary>Probability of committing, then answering only after <see cref="TimeoutAfterCommitDelayMs"/>.</summary>
    public double TimeoutAfterCommitRate { get; set; }

    /// <summary>5xx statuses chosen from (uniformly) for the error faults. Default 500, 502, 503.</summary>
    public List<int> ServerErrorStatuses { get; set; } = [];

    /// <summary>Delay of a timeout-after-commit answer, in milliseconds; beyond the client's timeout (default 150,000).</summary>
    public int TimeoutAfterCommitDelayMs { get; set; } = 150_000;

    /// <summary>
    /// Network jitter: every request to a Gong endpoint (and any other request except <c>/_sim</c> and <c>/health</c>)
    /// reaches the simulator after an extra delay drawn uniformly from 0 to this many milliseconds, before it is
    /// counted against the rate limit. 0 = off.
    /// </summary>
    public int ArrivalJitterMs { get; set; }

    /// <summary>
    /// Handshake cost: the first request on each new TCP connection (except <c>/_sim</c> and <c>/health</c>) reaches
    /// the simulator this many milliseconds later, as a TLS handshake to a tenant host would delay it. 0 = off.
    /// </summary>
    public int NewConnectionDelayMs { get; set; }

    /// <summary>
    /// Another client of the same company ("another integration") spending the quota: this many calls per second,
    /// evenly spaced, counted in the same one-second window and daily budget (a foreign call that finds the window
    /// full is refused and not retried). Shown in <c>/_sim/stats</c>, not in the call log. 0 = off.
    /// </summary>
    public double ForeignCallsPerSecond { get; set; }

    /// <summary>Largest accepted assign batch; more ids answer 400 (Gong's page says 200, its newer spec 100).</summary>
    public int BatchLimit { get; set; } = 200;

    /// <summary>Every call answers 401 until this instant (a credentials outage).</summary>
    public DateTimeOffset? UnauthorizedUntil { get; set; }

    /// <summary>Convenience for the admin endpoint: sets <see cref="UnauthorizedUntil"/> to now + this many seconds.</summary>
    public double? UnauthorizedForSeconds { get; set; }

    /// <summary>An assign call that contains any of these ids answers 400 naming the id.</summary>
    public List<string> BadRequestIds { get; set; } = [];

    /// <summary>An assign call that contains an id with this prefix answers 400 naming the id. Null = off.</summary>
    public string? BadRequestIdPrefix { get; set; }

    /// <summary>Assign calls for these flows answer 403 (no Engage licence or missing scope).</summary>
    public List<string> ForbiddenFlowIds { get; set; } = [];

    /// <summary>
    /// One-shot faults consumed in order by the next calls of their endpoint, before any random fault:
    /// e.g. five <c>RateLimited</c> then normal answers.
    /// </summary>
    public List<ScriptedFault> Script { get; set; } = [];
}

/// <summary>What a scripted or random fault does.</summary>
public enum FaultKind
{
    /// <summary>429 with the fault's Retry-After (or the rate limit's mode when unset).</summary>
    RateLimited,

    /// <summary>401.</summary>
    Unauthorized,

    /// <summary>400 for the whole call.</summary>
    BadRequest,

    /// <summary>5xx, nothing committed.</summary>
    ErrorBeforeCommit,

    /// <summary>5xx after the assignments were committed.</summary>
    ErrorAfterCommit,

    /// <summary>Connection reset before anything is committed.</summary>
    ResetBeforeCommit,

    /// <summary>Connection reset after the assignments were committed.</summary>
    ResetAfterCommit,

    /// <summary>Commit, then answer only after the timeout delay.</summary>
    TimeoutAfterCommit,

    /// <summary>Work <see cref="ScriptedFault.CommitDelayMs"/> before committing, and commit even when the client has gone
    /// (cancelled, timed out, shut down): Gong finishing a request nobody waits for any more. Answers 200 if anyone is
    /// still listening.</summary>
    SlowCommit,
}

/// <summary>A one-shot fault for the next call of an endpoint.</summary>
public sealed class ScriptedFault
{
    /// <summary>What happens.</summary>
    public FaultKind Kind { get; set; }

    /// <summary>Endpoint it applies to: <c>assign</c> (default) or <c>lookup</c>.</summary>
    public string Endpoint { get; set; } = SimulatorEndpoints.Assign;

    /// <summary>Status for the 5xx kinds (default 500).</summary>
    public int? Status { get; set; }

    /// <summary>Retry-After in seconds for <see cref="FaultKind.RateLimited"/> (default 1).</summary>
    public int? RetryAfterSeconds { get; set; }

    /// <summary>Retry-After form for <see cref="FaultKind.RateLimited"/>; default the rate limit's mode.</summary>
    public RetryAfterMode? RetryAfterMode { get; set; }

    /// <summary>For <see cref="FaultKind.RateLimited"/>: the <c>Retry-After</c> header sent verbatim (any value: <c>2147483647</c>,
    /// an HTTP date decades ahead, garbage); wins over <see cref="RetryAfterSeconds"/> and <see cref="RetryAfterMode"/>.</summary>
    public string? RetryAfterHeader { get; set; }

    /// <summary>For <see cref="FaultKind.SlowCommit"/>: milliseconds of work before the commit (default 10,000).</summary>
    public int? CommitDelayMs { get; set; }
}
