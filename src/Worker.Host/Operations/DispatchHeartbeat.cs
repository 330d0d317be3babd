namespace Worker.Host.Operations;

/// <summary>
/// Liveness signal of the dispatch loop: the dispatcher calls <see cref="Beat"/> every loop turn (also when idle);
/// readiness reports unhealthy when the last beat is older than the configured threshold.
/// </summary>
public sealed class DispatchHeartbeat(TimeProvider timeProvider)
{
    private long lastBeatTicks;

    /// <summary>Last beat (UTC), or null before the first.</summary>
    public DateTimeOffset? LastBeat
    {
        get
        {
            var ticks = Interlocked.Read(ref lastBeatTicks);
            return ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    /// <summary>Records that the dispatch loop is turning.</summary>
    public void Beat() => Interlocked.Exchange(ref lastBeatTicks, timeProvider.GetUtcNow().UtcTicks);
}
