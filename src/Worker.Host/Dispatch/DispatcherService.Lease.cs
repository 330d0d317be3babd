namespace Worker.Host.Dispatch;

/// <summary>Keeps a running batch's lease and retries the write of its results until that lease ends.</summary>
internal sealed partial class DispatcherService
{
    private async Task KeepLeaseAsync(Guid batchId, LeaseEnd lease, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(settings.LeaseDuration / 3, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    var renewedAt = timeProvider.GetUtcNow();
                    if (!await leases.RenewLeaseAsync(batchId, cancellationToken).ConfigureAwait(false))
                    {
                        LogLeaseLost(batchId);
                        return;
                    }

                    lease.Until = renewedAt + settings.LeaseDuration;
                }
                catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
                {
                    LogRenewFailed(ex, batchId);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The call ended.
        }
    }

    // Writes after a call must land even during shutdown (no cancellation) and across a short database outage: retried
    // until the lease ends, when another replica may reclaim the batch (and reconcile it), then given up.
    private async Task<T> WithRetriesAsync<T>(LeaseEnd lease, Func<CancellationToken, Task<T>> write)
    {
        // Wall-clock on purpose (TimeProvider.System, not the injected clock): this must make progress during shutdown
        // whatever clock the service runs on.
        var wallClock = TimeProvider.System;
        var deadline = wallClock.GetUtcNow() + (lease.Until - timeProvider.GetUtcNow());
        var delay = TimeSpan.FromMilliseconds(200);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await write(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is Npgsql.NpgsqlException or InvalidOperationException or TimeoutException && wallClock.GetUtcNow() + delay < deadline)
            {
                LogWriteRetry(ex, attempt);
                await Task.Delay(delay, wallClock, CancellationToken.None).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    /// <summary>Until when this replica holds a batch's lease (UTC, on the injected clock), moved by each renewal.</summary>
    private sealed class LeaseEnd(DateTimeOffset until)
    {
        private long ticks = until.UtcTicks;

        public DateTimeOffset Until
        {
            get => new(Interlocked.Read(ref ticks), TimeSpan.Zero);
            set => Interlocked.Exchange(ref ticks, value.UtcTicks);
        }
    }
}
