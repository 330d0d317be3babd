namespace Worker.Host.Dispatch;

/// <summary>A credentials pause after a 401.</summary>
/// <param name="Reason">Gong's message (never a secret).</param>
/// <param name="Since">First 401 of this pause (UTC).</param>
/// <param name="NextProbeAt">When one batch may be tried again (UTC), growing with backoff.</param>
public sealed record GongPause(string Reason, DateTimeOffset Since, DateTimeOffset NextProbeAt)
{
    /// <summary>Probes Gong refused during this pause (the backoff step: the next wait is the probe delay × 2^this).</summary>
    public int RefusedProbes { get; init; }
}
