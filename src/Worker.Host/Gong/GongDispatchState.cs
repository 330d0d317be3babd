using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Dispatch;

namespace Worker.Host.Gong;

/// <summary>
/// This replica's view of whether Gong may be called: the credentials pause (shared by every replica through
/// <see cref="CredentialsPauseStore"/>, cached here and refreshed each dispatch turn) and the shared rate gate's block.
/// Thread-safe; one instance per process.
/// </summary>
/// <remarks>When Postgres cannot be written, a 401 still pauses this replica (a local pause with the first probe delay),
/// so an outage of both never turns into a stream of refused calls.</remarks>
internal sealed partial class GongDispatchState(
    PostgresRateGate gate,
    RateGateBlockReader blocks,
    CredentialsPauseStore store,
    IOptions<GongOptions> options,
    TimeProvider time,
    ILogger<GongDispatchState> logger) : IGongDispatchState
{
    private readonly Lock sync = new();
    private GongPause? pause;

    /// <inheritdoc />
    public GongPause? Pause
    {
        get
        {
            lock (sync)
            {
                return pause;
            }
        }
    }

    /// <inheritdoc />
    public Task<DateTimeOffset?> GetBlockedUntilAsync(CancellationToken cancellationToken) => gate.GetBlockedUntilAsync(cancellationToken);

    /// <inheritdoc />
    public Task<GateBlock?> GetBlockAsync(CancellationToken cancellationToken) => blocks.ReadAsync(cancellationToken);

    /// <inheritdoc />
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var shared = await store.ReadAsync(cancellationToken).ConfigureAwait(false);
        lock (sync)
        {
            pause = shared;
        }
    }

    /// <summary>Records a 401 to a call started at <paramref name="callStartedAt"/>: starts the shared pause, or steps its
    /// backoff when the call was a probe (<c>UnauthorizedProbeDelay × 2^(refused probes)</c>, capped at
    /// <c>UnauthorizedMaxProbeDelay</c>); a 401 to a call already in flight changes nothing.</summary>
    /// <param name="reason">Gong's message (never a secret).</param>
    /// <param name="callStartedAt">When the refused call started (UTC).</param>
    /// <returns>The pause now in force.</returns>
    public async Task<GongPause> RecordUnauthorizedAsync(string reason, DateTimeOffset callStartedAt)
    {
        GongPause now;
        try
        {
            now = await store.RecordUnauthorizedAsync(reason, callStartedAt, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            LogPauseNotShared(ex);
            var at = time.GetUtcNow();
            lock (sync)
            {
                now = pause ?? new GongPause(reason, at, at + options.Value.UnauthorizedProbeDelay);
            }
        }

        lock (sync)
        {
            pause = now;
        }

        return now;
    }

    /// <summary>Records a call Gong accepted (any answer but 401) that started at <paramref name="callStartedAt"/>: ends
    /// the shared pause when the call started after it began.</summary>
    public async Task RecordAcceptedAsync(DateTimeOffset callStartedAt)
    {
        try
        {
            await store.RecordAcceptedAsync(callStartedAt, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            LogPauseNotShared(ex);
        }

        lock (sync)
        {
            if (pause is { } p && p.Since <= callStartedAt)
            {
                pause = null;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The credentials pause could not be shared through Postgres; this replica pauses on its own")]
    private partial void LogPauseNotShared(Exception exception);
}
