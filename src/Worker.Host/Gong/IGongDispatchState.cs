namespace Worker.Host.Gong;

/// <summary>
/// What the dispatcher asks before claiming work, and what health and metrics report: whether Gong refuses
/// every call (401: credentials) and until when the shared rate gate is blocked.
/// </summary>
public interface IGongDispatchState
{
    /// <summary>The current credentials pause, or null when calls are allowed. Set by a 401, cleared by the next
    /// accepted call; while paused the dispatcher claims one batch as a probe only after <see cref="GongPause.NextProbeAt"/>.</summary>
    GongPause? Pause { get; }

    /// <summary>Reads the shared rate gate (one Postgres row): the UTC instant before which no call may start, or null.
    /// The dispatcher claims no batch while this is in the future (a 429's Retry-After may be hours).</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    Task<DateTimeOffset?> GetBlockedUntilAsync(CancellationToken cancellationToken);
}

/// <summary>A credentials pause after a 401.</summary>
/// <param name="Reason">Gong's message (never a secret).</param>
/// <param name="Since">First 401 of this pause (UTC).</param>
/// <param name="NextProbeAt">When one batch may be tried again (UTC), growing with backoff.</param>
public sealed record GongPause(string Reason, DateTimeOffset Since, DateTimeOffset NextProbeAt);
