namespace Worker.Persistence.Entities;

/// <summary>
/// The single row (<c>rate_gate</c>, id 1) every replica updates atomically to take a Gong call slot:
/// Gong's limit (3 calls/s, 10,000/day by default) is per company, so the gate is shared.
/// </summary>
public sealed class RateGate
{
    /// <summary>Always 1.</summary>
    public int Id { get; set; }

    /// <summary>Earliest start time (UTC) of the next call.</summary>
    public DateTimeOffset NextSlotAt { get; set; }

    /// <summary>No call may start before this time (UTC): a 429's Retry-After plus a margin.</summary>
    public DateTimeOffset? BlockedUntil { get; set; }

    /// <summary>Why the gate is blocked (e.g. "429 Retry-After 2s").</summary>
    public string? BlockedReason { get; set; }

    /// <summary>The UTC day <see cref="DayCallCount"/> counts.</summary>
    public DateOnly Day { get; set; }

    /// <summary>Calls started on <see cref="Day"/> (against DailyCallLimit).</summary>
    public int DayCallCount { get; set; }

    /// <summary>Latest arrival times at Gong (UTC) of the most recent calls (slot plus that call's margin), in slot
    /// order, for the sliding one-second window.</summary>
    public List<DateTimeOffset> RecentStarts { get; set; } = [];

    /// <summary>Calls per second the gate allows now, below the configured RequestsPerSecond after a 429 it did not
    /// expect (multiplicative decrease, additive climb); null = the configured rate.</summary>
    public double? AllowedRate { get; set; }

    /// <summary>Why the allowed rate is what it is: <c>configured</c>, <c>throttled</c> (a 429 cut it) or
    /// <c>climbing</c> (back up after a clean period).</summary>
    public string? RateReason { get; set; }

    /// <summary>When the allowed rate last changed (UTC).</summary>
    public DateTimeOffset? RateChangedAt { get; set; }

    /// <summary>Window margin (seconds) the latest call was recorded with: base margin plus learned jitter.</summary>
    public double? MarginSeconds { get; set; }

    /// <summary>Most prospects per assign call that Gong accepts, learned from a 400 naming it or a bisection that
    /// proved it; null = not learned (the configured MaxBatchSize applies).</summary>
    public int? LearnedBatchLimit { get; set; }

    /// <summary>When <see cref="LearnedBatchLimit"/> was learned (UTC).</summary>
    public DateTimeOffset? BatchLimitLearnedAt { get; set; }

    /// <summary>How it was learned (Gong's message, or the bisection that proved it).</summary>
    public string? BatchLimitReason { get; set; }

    /// <summary>The configured MaxBatchSize when the limit was learned: another configured size forgets it.</summary>
    public int? BatchLimitMaxBatchSize { get; set; }

    /// <summary>Last update (UTC).</summary>
    public DateTimeOffset UpdatedAt { get; set; }
}
