namespace Worker.Persistence.Entities;

/// <summary>
/// An operator lifting the rate gate's block by hand (<c>gate open --reason …</c>), kept for audit
/// (<c>rate_gate_openings</c>): who, when, why, and the block that was lifted.
/// </summary>
public sealed class RateGateOpening
{
    /// <summary>Surrogate key.</summary>
    public long Id { get; set; }

    /// <summary>When the block was lifted (UTC).</summary>
    public DateTimeOffset OpenedAt { get; set; }

    /// <summary>Who lifted it (the <c>--by</c> option, else the operating-system user and host; at most 256 characters).</summary>
    public required string OpenedBy { get; set; }

    /// <summary>Why (the <c>--reason</c> option; at most 1,000 characters).</summary>
    public required string Reason { get; set; }

    /// <summary>The <c>blocked_until</c> that was lifted (UTC), or null when the gate was open.</summary>
    public DateTimeOffset? BlockedUntil { get; set; }

    /// <summary>The <c>blocked_reason</c> that was lifted.</summary>
    public string? BlockedReason { get; set; }
}
