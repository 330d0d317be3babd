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

    /// <summary>Start times (UTC) of the most recent calls, newest last, for the sliding one-second window.</summary>
    public List<DateTimeOffset> RecentStarts { get; set; } = [];

    /// <summary>Last update (UTC).</summary>
    public DateTimeOffset UpdatedAt { get; set; }
}
