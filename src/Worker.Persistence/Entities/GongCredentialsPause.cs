namespace Worker.Persistence.Entities;

/// <summary>
/// The credentials pause shared by every replica (<c>gong_credentials_pause</c>, one row, id 1): set by the first 401,
/// stepped only by a 401 answering a probe (a call started at or after <see cref="NextProbeAt"/>; the row lock makes the
/// first such answer move <see cref="NextProbeAt"/>, so probes of several replicas at once are one step), cleared by the
/// next call Gong accepts. Concurrent 401s of one outage therefore cost one step of backoff, not one each.
/// </summary>
public sealed class GongCredentialsPause
{
    /// <summary>Always 1.</summary>
    public int Id { get; set; }

    /// <summary>When the pause began (UTC); null while Gong accepts the credentials.</summary>
    public DateTimeOffset? PausedSince { get; set; }

    /// <summary>Gong's reason for the 401 (never a secret; at most 512 characters).</summary>
    public string? Reason { get; set; }

    /// <summary>Probes Gong refused during this pause (each doubles the next wait, up to the cap).</summary>
    public int Probes { get; set; }

    /// <summary>Earliest start of the next probe call (UTC).</summary>
    public DateTimeOffset? NextProbeAt { get; set; }

    /// <summary>Last change (UTC).</summary>
    public DateTimeOffset UpdatedAt { get; set; }
}
