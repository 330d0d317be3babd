using System.ComponentModel.DataAnnotations;

namespace Worker.Host.Gong;

/// <summary>
/// Gong client settings (section <c>Gong</c>, environment variables <c>Gong__BaseUrl</c>, <c>Gong__AccessKey</c>, …).
/// Validated at start (<see cref="GongOptionsValidator"/>): exactly one auth mode, an absolute http(s) base URL
/// (plain http only for loopback hosts), every number in range.
/// </summary>
/// <remarks>Gong's limits (3 calls/s and 10,000 calls/day per company, 200 ids per assign) come from Gong's API
/// documentation (<c>POST /v2/flows/prospects/assign</c>; summarized in <c>docs/gong-api-facts.md</c>); Gong can raise
/// them per company, hence settings.</remarks>
public sealed class GongOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Gong";

    /// <summary>Tenant base URL (default <c>https://api.gong.io</c>); paths are joined to it with or without a
    /// trailing slash. Plain http only for loopback hosts (the simulator).</summary>
    public string BaseUrl { get; set; } = "https://api.gong.io";

    /// <summary>Access key for Basic auth (with <see cref="AccessKeySecret"/>). Never logged.</summary>
    public string? AccessKey { get; set; }

    /// <summary>Access key secret for Basic auth. Never logged.</summary>
    public string? AccessKeySecret { get; set; }

    /// <summary>OAuth bearer token (instead of an access key). Never logged.</summary>
    public string? BearerToken { get; set; }

    /// <summary>Most prospect ids per assign call (default 200, Gong's documented limit; 1–200).</summary>
    [Range(1, 200, ErrorMessage = "Gong:MaxBatchSize (Gong__MaxBatchSize) must be 1–200.")]
    public int MaxBatchSize { get; set; } = 200;

    /// <summary>Most calls arriving at Gong in any one-second window, across every replica (the gate counts each call's
    /// recorded arrival, not its start; default 3; 1–100).</summary>
    [Range(1, 100, ErrorMessage = "Gong:RequestsPerSecond (Gong__RequestsPerSecond) must be 1–100.")]
    public int RequestsPerSecond { get; set; } = 3;

    /// <summary>Most calls per UTC day, across every replica (default 10,000; 1–100,000,000).</summary>
    [Range(1, 100_000_000, ErrorMessage = "Gong:DailyCallLimit (Gong__DailyCallLimit) must be 1–100000000.")]
    public int DailyCallLimit { get; set; } = 10_000;

    /// <summary>
    /// Calls of the daily budget only high-priority batches may use (default 500; 0–100,000,000): normal and bulk stop
    /// at <see cref="DailyCallLimit"/> minus this. Capped at a tenth of DailyCallLimit (rounded down), so a small limit
    /// (tests) keeps its meaning.
    /// </summary>
    [Range(0, 100_000_000, ErrorMessage = "Gong:DailyReserveForHigh (Gong__DailyReserveForHigh) must be 0–100000000.")]
    public int DailyReserveForHigh { get; set; } = 500;

    /// <summary>Base slack of the one-second window (default 10 ms; 0–1 s): every call is recorded in the gate as
    /// arriving up to this much plus the learned network jitter after its slot, and the next call that would complete a
    /// window of <see cref="RequestsPerSecond"/> + 1 waits until one second after that. A caller may start up to half of
    /// it after its slot (the other half covers the clock offset between replicas); later, it moves the slot to now
    /// while no later slot depends on it, else gives the slot up, so local scheduling delays stay inside it.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:01", ErrorMessage = "Gong:RateWindowMargin (Gong__RateWindowMargin) must be 00:00:00–00:00:01.")]
    public TimeSpan RateWindowMargin { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Jitter allowance added to <see cref="RateWindowMargin"/> until this replica has measured enough warm
    /// round trips to learn the network's jitter (default 100 ms; 0–1 s).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:01", ErrorMessage = "Gong:InitialJitterAllowance (Gong__InitialJitterAllowance) must be 00:00:00–00:00:01.")]
    public TimeSpan InitialJitterAllowance { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Most jitter allowance the gate learns from round trips (default 500 ms; 0–5 s).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:05", ErrorMessage = "Gong:MaxJitterAllowance (Gong__MaxJitterAllowance) must be 00:00:00–00:00:05.")]
    public TimeSpan MaxJitterAllowance { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Which clock the shared gate's slots are on: <see cref="RateGateClock.Database"/> (default: Postgres'
    /// <c>clock_timestamp()</c>, the one clock of every replica) or <see cref="RateGateClock.Local"/> (this process's
    /// TimeProvider; for tests on a fake clock, or one replica).</summary>
    public RateGateClock RateGateClock { get; set; } = RateGateClock.Database;

    /// <summary>Factor applied to the allowed rate after a 429 the gate did not expect (another client of the company
    /// spends part of the quota); default 0.7 (0.1–1).</summary>
    [Range(0.1, 1.0, ErrorMessage = "Gong:RateDecreaseFactor (Gong__RateDecreaseFactor) must be 0.1–1.")]
    public double RateDecreaseFactor { get; set; } = 0.7;

    /// <summary>Calls per second added back after each <see cref="RateIncreaseInterval"/> without a 429, up to
    /// <see cref="RequestsPerSecond"/> (default 0.1; 0.01–100).</summary>
    [Range(0.01, 100.0, ErrorMessage = "Gong:RateIncreaseStep (Gong__RateIncreaseStep) must be 0.01–100.")]
    public double RateIncreaseStep { get; set; } = 0.1;

    /// <summary>Clean period after which the allowed rate climbs by <see cref="RateIncreaseStep"/> (default 5 s; 100 ms–1 h).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00", ErrorMessage = "Gong:RateIncreaseInterval (Gong__RateIncreaseInterval) must be 00:00:00.100–01:00:00.")]
    public TimeSpan RateIncreaseInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Age after which a warm connection is replaced, at the next warm-up request rather than at a call, so DNS
    /// changes are picked up without a cold call (default 5 min; 10 s–1 day).</summary>
    [Range(typeof(TimeSpan), "00:00:10", "1.00:00:00", ErrorMessage = "Gong:ConnectionLifetime (Gong__ConnectionLifetime) must be 00:00:10–1.00:00:00.")]
    public TimeSpan ConnectionLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Path, relative to <see cref="BaseUrl"/>, of the warm-up request sent before every call on the call's
    /// connection: a <c>HEAD</c> without credentials, which Gong does not count as an API call (default empty: the base
    /// URL itself). Its answer does not matter; its round trip teaches the gate the network's jitter.</summary>
    [MaxLength(200, ErrorMessage = "Gong:WarmUpPath (Gong__WarmUpPath) must be at most 200 characters.")]
    public string WarmUpPath { get; set; } = "";

    /// <summary>Learned batch limits stored before this instant are ignored (set it after Gong raised the limit again);
    /// a limit learned under another <see cref="MaxBatchSize"/> is ignored too. Null = keep what was learned.</summary>
    public DateTimeOffset? ForgetBatchLimitLearnedBefore { get; set; }

    /// <summary>Longest wait for a rate-gate slot inside one send; a slot further away (e.g. a Retry-After of hours)
    /// returns the batch to Pending instead of holding it (default 30 s; 1 s–10 min).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ErrorMessage = "Gong:MaxGateWait (Gong__MaxGateWait) must be 00:00:01–00:10:00.")]
    public TimeSpan MaxGateWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Per-attempt timeout of one HTTP call (default 90 s: Gong reads the prospects from the CRM; 1 s–10 min).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ErrorMessage = "Gong:AttemptTimeout (Gong__AttemptTimeout) must be 00:00:01–00:10:00.")]
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(90);

    /// <summary>Added to every 429's Retry-After before the shared gate opens again (default 1 s; 0–1 min).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00", ErrorMessage = "Gong:RetryAfterMargin (Gong__RetryAfterMargin) must be 00:00:00–00:01:00.")]
    public TimeSpan RetryAfterMargin { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest gate block a 429 may cause (default 25 h: Gong's daily quota resets within a day; 1 s–30 days).
    /// A longer Retry-After (a hostile or broken header such as <c>2147483647</c>, or a date decades ahead) is cut to
    /// this and logged as clamped.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00", ErrorMessage = "Gong:MaxRetryAfter (Gong__MaxRetryAfter) must be 00:00:01–30.00:00:00.")]
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromHours(25);

    /// <summary>Longest time after its start that Gong may still commit an assign call (a server-side bound); unset
    /// means <see cref="AttemptTimeout"/>. A prospect whose call's outcome is unknown (timeout, reset, 5xx, shutdown,
    /// expired lease) is looked up only after its call's start + this + <see cref="ReconcileDelay"/> (1 s–1 day).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "Gong:ServerCommitBound (Gong__ServerCommitBound) must be 00:00:01–1.00:00:00.")]
    public TimeSpan? ServerCommitBound { get; set; }

    /// <summary>Gate block after a 429 without Retry-After; doubles for each such 429 in a row up to
    /// <see cref="TooManyRequestsMaxBackoff"/> (default 5 s; 100 ms–1 h).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00", ErrorMessage = "Gong:TooManyRequestsBackoff (Gong__TooManyRequestsBackoff) must be 00:00:00.100–01:00:00.")]
    public TimeSpan TooManyRequestsBackoff { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Cap of the 429-without-header backoff (default 5 min; 100 ms–24 h).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00", ErrorMessage = "Gong:TooManyRequestsMaxBackoff (Gong__TooManyRequestsMaxBackoff) must be 00:00:00.100–1.00:00:00.")]
    public TimeSpan TooManyRequestsMaxBackoff { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Retries, inside one send, of a call that never reached Gong (connection refused, DNS failure);
    /// jittered exponential delays from <see cref="ConnectRetryDelay"/> (default 3; 0–10).</summary>
    [Range(0, 10, ErrorMessage = "Gong:ConnectRetryCount (Gong__ConnectRetryCount) must be 0–10.")]
    public int ConnectRetryCount { get; set; } = 3;

    /// <summary>Base delay of the connect retries (default 200 ms; 0–30 s).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:30", ErrorMessage = "Gong:ConnectRetryDelay (Gong__ConnectRetryDelay) must be 00:00:00–00:00:30.")]
    public TimeSpan ConnectRetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>First wait before probing again after a 401; doubles per refused probe (<c>CredentialsPauseStore</c>) up to
    /// <see cref="UnauthorizedMaxProbeDelay"/> (default 5 s; 100 ms–1 h).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00", ErrorMessage = "Gong:UnauthorizedProbeDelay (Gong__UnauthorizedProbeDelay) must be 00:00:00.100–01:00:00.")]
    public TimeSpan UnauthorizedProbeDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Cap of the 401 probe backoff (default 5 min; 100 ms–24 h).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00", ErrorMessage = "Gong:UnauthorizedMaxProbeDelay (Gong__UnauthorizedMaxProbeDelay) must be 00:00:00.100–1.00:00:00.")]
    public TimeSpan UnauthorizedMaxProbeDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Gong's read-after-write lag: added to the commit bound before a prospect of an outcome-unknown call is
    /// looked up, and the wait before a second lookup confirms a prospect the first found absent (default 1 s; 0–1 min).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00", ErrorMessage = "Gong:ReconcileDelay (Gong__ReconcileDelay) must be 00:00:00–00:01:00.")]
    public TimeSpan ReconcileDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Circuit breaker: failure ratio (timeouts, 5xx, network errors) in the sampling window that opens it (default 0.5).</summary>
    [Range(0.01, 1.0, ErrorMessage = "Gong:CircuitBreakerFailureRatio (Gong__CircuitBreakerFailureRatio) must be 0.01–1.")]
    public double CircuitBreakerFailureRatio { get; set; } = 0.5;

    /// <summary>Circuit breaker: calls needed in the sampling window before it may open (default 10; 2–1000).</summary>
    [Range(2, 1000, ErrorMessage = "Gong:CircuitBreakerMinimumThroughput (Gong__CircuitBreakerMinimumThroughput) must be 2–1000.")]
    public int CircuitBreakerMinimumThroughput { get; set; } = 10;

    /// <summary>Circuit breaker: sampling window (default 30 s; 1 s–10 min).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ErrorMessage = "Gong:CircuitBreakerSamplingDuration (Gong__CircuitBreakerSamplingDuration) must be 00:00:01–00:10:00.")]
    public TimeSpan CircuitBreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Circuit breaker: how long it stays open before one trial call (default 15 s; 1 s–10 min).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ErrorMessage = "Gong:CircuitBreakerBreakDuration (Gong__CircuitBreakerBreakDuration) must be 00:00:01–00:10:00.")]
    public TimeSpan CircuitBreakerBreakDuration { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How long after an assign call started its outcome is settled for a lookup: the call can no longer commit
    /// (<see cref="ServerCommitBound"/>, else <see cref="AttemptTimeout"/>) and Gong's read side has had
    /// <see cref="ReconcileDelay"/> to catch up.</summary>
    public TimeSpan OutcomeSettleTime => (ServerCommitBound ?? AttemptTimeout) + ReconcileDelay;

    /// <summary>The base URL as a <see cref="Uri"/> ending in <c>/</c>, so relative paths append to any path prefix.</summary>
    /// <exception cref="UriFormatException">When <see cref="BaseUrl"/> is not an absolute URL (validation reports it first).</exception>
    public Uri GetBaseUri() => new(BaseUrl.Trim().TrimEnd('/') + "/", UriKind.Absolute);
}

/// <summary>The clock of the shared rate gate's slots.</summary>
public enum RateGateClock
{
    /// <summary>Postgres' <c>clock_timestamp()</c>: one clock for every replica, whatever their own clocks say.</summary>
    Database,

    /// <summary>This process's TimeProvider (tests on a fake clock; a single replica).</summary>
    Local,
}
