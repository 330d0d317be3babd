using Microsoft.Extensions.Options;

namespace Worker.Host.Gong;

/// <summary>
/// This replica's view of whether Gong may be called: the credentials pause (set by a 401, cleared by the next call
/// Gong accepts) and the shared rate gate's block. Thread-safe; one instance per process.
/// </summary>
internal sealed class GongDispatchState(PostgresRateGate gate, IOptions<GongOptions> options, TimeProvider time) : IGongDispatchState
{
    private readonly Lock sync = new();
    private GongPause? pause;
    private int unauthorizedInARow;
    private int tooManyRequestsWithoutHeaderInARow;

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

    /// <summary>Records a 401: starts or extends the pause; the next probe waits
    /// <c>UnauthorizedProbeDelay × 2^(401s in a row − 1)</c>, capped at <c>UnauthorizedMaxProbeDelay</c>.</summary>
    /// <param name="reason">Gong's message (never a secret).</param>
    /// <returns>The pause now in force.</returns>
    public GongPause RecordUnauthorized(string reason)
    {
        var o = options.Value;
        var now = time.GetUtcNow();
        lock (sync)
        {
            unauthorizedInARow = Math.Min(unauthorizedInARow + 1, 30);
            var delay = TimeSpan.FromTicks(Math.Min(
                o.UnauthorizedMaxProbeDelay.Ticks,
                o.UnauthorizedProbeDelay.Ticks * (long)Math.Pow(2, Math.Min(unauthorizedInARow - 1, 20))));
            pause = new GongPause(reason, pause?.Since ?? now, now + delay);
            return pause;
        }
    }

    /// <summary>Records a call Gong accepted (any answer but 401): ends the pause.</summary>
    public void RecordAccepted()
    {
        lock (sync)
        {
            unauthorizedInARow = 0;
            pause = null;
        }
    }

    /// <summary>The gate block for a 429 without Retry-After: <c>TooManyRequestsBackoff × 2^(such 429s in a row − 1)</c>,
    /// capped at <c>TooManyRequestsMaxBackoff</c>.</summary>
    public TimeSpan NextTooManyRequestsBackoff()
    {
        var o = options.Value;
        lock (sync)
        {
            tooManyRequestsWithoutHeaderInARow = Math.Min(tooManyRequestsWithoutHeaderInARow + 1, 30);
            return TimeSpan.FromTicks(Math.Min(
                o.TooManyRequestsMaxBackoff.Ticks,
                o.TooManyRequestsBackoff.Ticks * (long)Math.Pow(2, Math.Min(tooManyRequestsWithoutHeaderInARow - 1, 20))));
        }
    }

    /// <summary>Records an answer other than 429: the 429 backoff starts again from its base.</summary>
    public void RecordNotThrottled()
    {
        lock (sync)
        {
            tooManyRequestsWithoutHeaderInARow = 0;
        }
    }
}
