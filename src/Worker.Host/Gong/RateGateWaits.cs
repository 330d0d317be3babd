namespace Worker.Host.Gong;

/// <summary>
/// Waiting for a slot of the rate gate: a timer for the long part, then the waiting thread itself (sleeps of 1 ms, then
/// spinning) for the last part, because on a busy machine a timer's continuation can run tens of ms late, and a caller
/// later than its slot allows (<see cref="GateMargin.LateStart"/>) moves or loses its slot.
/// </summary>
internal static class RateGateWaits
{
    /// <summary>How long before a slot the precise wait takes over from the timer.</summary>
    public static readonly TimeSpan PreciseLead = TimeSpan.FromMilliseconds(50);

    /// <summary>Longest real time spent in the precise wait before falling back to a timer (a fake clock does not move
    /// by itself).</summary>
    private static readonly TimeSpan PreciseWaitLimit = TimeSpan.FromMilliseconds(150);

    /// <summary>Waits on a timer of <paramref name="time"/> until <paramref name="instant"/> (returns at once when it
    /// has passed).</summary>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public static async Task DelayUntilAsync(TimeProvider time, DateTimeOffset instant, CancellationToken cancellationToken)
    {
        var delay = instant - time.GetUtcNow();
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Waits on this thread until <paramref name="instant"/> (at most 150 ms of real time; then on a timer).</summary>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public static async Task PreciseDelayUntilAsync(TimeProvider time, DateTimeOffset instant, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        while (time.GetUtcNow() < instant)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (System.Diagnostics.Stopwatch.GetElapsedTime(started) > PreciseWaitLimit)
            {
                await DelayUntilAsync(time, instant, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (instant - time.GetUtcNow() > TimeSpan.FromMilliseconds(4))
            {
                Thread.Sleep(1);
            }
            else if (!Thread.Yield())
            {
                Thread.SpinWait(64);
            }
        }
    }
}
