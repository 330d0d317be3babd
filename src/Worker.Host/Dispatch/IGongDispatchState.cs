namespace Worker.Host.Dispatch;

/// <summary>
/// What the dispatcher asks before claiming work, and what health and metrics report: whether Gong refuses
/// every call (401: credentials, a pause shared by every replica through Postgres) and until when (and why) the shared
/// rate gate is blocked.
/// </summary>
public interface IGongDispatchState
{
    /// <summary>The current credentials pause as last read or written by this replica, or null when calls are allowed.
    /// Set by a 401, cleared by the next accepted call; while paused the dispatcher claims one batch as a probe only
    /// after <see cref="GongPause.NextProbeAt"/>.</summary>
    GongPause? Pause { get; }

    /// <summary>Reads the shared rate gate (one Postgres row): the UTC instant before which no call may start, or null.
    /// The dispatcher claims no batch while this is in the future (a 429's Retry-After may be hours).</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    Task<DateTimeOffset?> GetBlockedUntilAsync(CancellationToken cancellationToken);

    /// <summary>Reads the shared gate's block with its reason (a 429's Retry-After, or the daily budget), or null when open.</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    async Task<GateBlock?> GetBlockAsync(CancellationToken cancellationToken) =>
        await GetBlockedUntilAsync(cancellationToken).ConfigureAwait(false) is { } until ? new GateBlock(until, null) : null;

    /// <summary>Re-reads the shared credentials pause into <see cref="Pause"/> (another replica may have set or ended it).</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    Task RefreshAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
