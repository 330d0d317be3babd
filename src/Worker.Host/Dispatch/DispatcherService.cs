using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Worker.Host.Gong;
using Worker.Host.Operations;
using Worker.Host.Relay;

namespace Worker.Host.Dispatch;

/// <summary>
/// Stage 2 (DESIGN.md "Dispatch"), running in every replica: finds (flow, owner) groups that are ready (MaxBatchSize
/// pending prospects, or the oldest has waited MaxBatchDelay), claims batches in fair turns (the group served longest
/// ago first), keeps up to MaxConcurrentBatches calls in flight under renewed leases, records each answered batch in
/// one transaction, and reclaims batches whose lease expired as outcome unknown.
/// </summary>
/// <remarks>
/// Nothing is claimed while Gong refuses credentials (<see cref="IGongDispatchState.Pause"/>, except one probe batch
/// after its NextProbeAt) or while the shared rate gate is blocked (a 429's Retry-After). On stop it claims nothing
/// new, lets in-flight calls finish until <see cref="DispatchOptions.ShutdownReserve"/> before the host's shutdown
/// timeout, then cancels them and returns their prospects to Pending (reconcile-first: a call may have been sent).
/// </remarks>
internal sealed partial class DispatcherService(
    DispatchStore store,
    IGongBatchSender sender,
    IGongDispatchState gongState,
    DispatchHeartbeat heartbeat,
    OutboxSignal outboxSignal,
    WorkerMetrics metrics,
    IOptions<DispatchOptions> options,
    IOptions<HostOptions> hostOptions,
    IOptions<GongOptions> gongOptions,
    TimeProvider timeProvider,
    ILogger<DispatcherService> logger,
    PriorityLanePolicy lanes) : BackgroundService
{
    private static readonly TimeSpan ErrorBackoff = TimeSpan.FromSeconds(1);
    private readonly DispatchOptions settings = options.Value;
    private readonly Dictionary<Guid, Task> running = [];
    private readonly Channel<bool> wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource sendCancellation = new();
    private readonly CancellationTokenSource abandonCancellation = new();

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        var timeout = hostOptions.Value.ShutdownTimeout;
        var reserve = TimeSpan.FromTicks(Math.Min(settings.ShutdownReserve.Ticks, timeout.Ticks / 2));
        if (timeout < TimeSpan.FromDays(1))
        {
            sendCancellation.CancelAfter(timeout - reserve);
            abandonCancellation.CancelAfter(timeout - (reserve / 2));
        }

        await using var registration = cancellationToken.Register(() =>
        {
            sendCancellation.Cancel();
            abandonCancellation.Cancel();
        }).ConfigureAwait(false);
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        sendCancellation.Dispose();
        abandonCancellation.Dispose();
        base.Dispose();
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        LogStarted(settings.ReplicaName, settings.MaxBatchSize, settings.MaxBatchDelay, settings.MaxConcurrentBatches);
        try
        {
            await store.WarmUpAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Only a head start: the first write compiles the queries itself.
            LogWarmUpFailed(ex);
        }

        // Logged on change only (as the relay does): one Warning with the exception when turns start failing, e.g. for the
        // whole of a database outage, and one Information when a turn succeeds again; every turn between is Debug.
        DateTimeOffset? failingSince = null;
        while (!stoppingToken.IsCancellationRequested)
        {
            heartbeat.Beat();
            TimeSpan wait;
            try
            {
                wait = await TurnAsync(stoppingToken).ConfigureAwait(false);
                if (failingSince is { } since)
                {
                    LogTurnsRecovered(timeProvider.GetUtcNow() - since);
                    failingSince = null;
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                if (failingSince is null)
                {
                    failingSince = timeProvider.GetUtcNow();
                    LogTurnsFailing(ex);
                }
                else
                {
                    LogTurnFailedAgain(ex.GetType().Name, ex.Message);
                }

                wait = ErrorBackoff;
            }

            await WaitAsync(wait, stoppingToken).ConfigureAwait(false);
        }

        LogStopping(running.Count);
        await Task.WhenAll(running.Values).ConfigureAwait(false);
    }

    /// <summary>One look at the backlog: reclaim expired leases, then claim and start batches; returns how long to idle.</summary>
    private async Task<TimeSpan> TurnAsync(CancellationToken cancellationToken)
    {
        foreach (var done in running.Where(r => r.Value.IsCompleted).Select(r => r.Key).ToList())
        {
            running.Remove(done);
        }

        var released = await store.ReclaimExpiredAsync(running.Keys, cancellationToken).ConfigureAwait(false);
        if (released > 0)
        {
            LogReclaimed(released);
        }

        var now = timeProvider.GetUtcNow();
        var slots = settings.MaxConcurrentBatches - running.Count;
        if (slots <= 0)
        {
            return settings.PollInterval;
        }

        // The credentials pause is shared: another replica's 401 (or its accepted probe) counts here too.
        await gongState.RefreshAsync(cancellationToken).ConfigureAwait(false);

        if (gongState.Pause is { } pause)
        {
            if (now < pause.NextProbeAt || running.Count > 0)
            {
                return Min(pause.NextProbeAt - now, settings.PollInterval);
            }

            slots = 1;
        }

        if (await gongState.GetBlockedUntilAsync(cancellationToken).ConfigureAwait(false) is { } blockedUntil && blockedUntil > now)
        {
            return Min(blockedUntil - now, settings.PollInterval);
        }

        var groups = await store.GetPendingGroupsAsync(cancellationToken).ConfigureAwait(false);
        var nextReadyAt = await ClaimByLaneAsync(groups, now, slots, cancellationToken).ConfigureAwait(false);
        var idle = nextReadyAt == DateTimeOffset.MaxValue ? settings.PollInterval : Min(nextReadyAt - now, settings.PollInterval);
        return idle < TimeSpan.Zero ? TimeSpan.Zero : idle;
    }

    private async Task RunBatchAsync(AssignmentBatch batch)
    {
        await Task.Yield();
        using var activity = WorkerTracing.StartBatch(batch);
        LogClaimed(batch.BatchId, batch.FlowId, batch.CrmProspectIds.Count, batch.ReconcileFirst.Count);
        // The claim set the lease a moment ago; counting from now less a second keeps the estimate on the safe side.
        var lease = new LeaseEnd(timeProvider.GetUtcNow() + settings.LeaseDuration - TimeSpan.FromSeconds(1));
        using var leaseCancellation = new CancellationTokenSource();
        var keeping = KeepLeaseAsync(batch.BatchId, lease, leaseCancellation.Token);
        BatchResult? result = null;
        string? failure = null;
        try
        {
            result = await SendAsync(batch).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (abandonCancellation.IsCancellationRequested)
        {
            LogAbandoned(batch.BatchId);
            failure = "the worker stopped before the Gong sender returned; a call may have been in flight";
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogSendFailed(ex, batch.BatchId);
            failure = $"the Gong sender failed ({ex.GetType().Name}: {ex.Message}); a call may have been in flight";
        }
        finally
        {
            await leaseCancellation.CancelAsync().ConfigureAwait(false);
            await keeping.ConfigureAwait(false);
        }

        // The call may have reached Gong (and may still commit): one attempt used, looked up first once it can no longer
        // commit; ids whose last lookup was this crash end as RetriesExhausted, so a poison batch cannot loop.
        result ??= Crashed(batch, failure ?? "the Gong sender returned nothing");
        try
        {
            var recorded = await WithRetriesAsync(lease, ct => store.RecordAsync(batch, result, ct)).ConfigureAwait(false);
            WorkerTracing.SetOutcome(activity, recorded.LeaseLost ? "lease_lost" : "recorded",
                recorded.Outcomes.GroupBy(o => o.Key.Status).ToDictionary(g => g.Key, g => g.Sum(o => o.Value), StringComparer.Ordinal));
            if (recorded.LeaseLost)
            {
                LogLeaseLost(batch.BatchId);
            }

            foreach (var ((status, errorCode), count) in recorded.Outcomes)
            {
                metrics.ProspectOutcomes(status, errorCode, count);
            }

            foreach (var (priority, count) in recorded.CompletedByPriority)
            {
                metrics.PriorityProspectsCompleted(PriorityLanes.ToWire(priority)!, count);
            }

            if (recorded.CompletedRequests > 0 || recorded.AlreadyRecorded)
            {
                outboxSignal.Notify();
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The lease runs out and another turn (of any replica) reclaims the batch as outcome unknown.
            LogRecordFailed(ex, batch.BatchId);
            WorkerTracing.SetOutcome(activity, "record_failed", error: ex);
        }
        finally
        {
            wake.Writer.TryWrite(true);
        }
    }

    /// <summary>Sends the batch; ids whose final lookup already crashed once (<see cref="AssignmentBatch.Abandoned"/>) are
    /// not handed to the sender again but end as RetriesExhausted.</summary>
    private async Task<BatchResult> SendAsync(AssignmentBatch batch)
    {
        if (batch.Abandoned.Count == 0)
        {
            return await sender.SendAsync(batch, sendCancellation.Token).WaitAsync(abandonCancellation.Token).ConfigureAwait(false);
        }

        var given = batch.CrmProspectIds.Where(id => !batch.Abandoned.Contains(id)).ToList();
        var results = batch.Abandoned.Select(id => Exhausted(id, "its last lookup never came back (the sender failed or its replica stopped)")).ToList();
        if (given.Count == 0)
        {
            return new BatchResult(results, []);
        }

        var sent = await sender.SendAsync(batch with { CrmProspectIds = given }, sendCancellation.Token).WaitAsync(abandonCancellation.Token).ConfigureAwait(false);
        return new BatchResult([.. sent.Prospects, .. results], sent.Calls);
    }

    private BatchResult Crashed(AssignmentBatch batch, string failure)
    {
        var settledAt = timeProvider.GetUtcNow() + gongOptions.Value.OutcomeSettleTime;
        return new BatchResult(
            [.. batch.CrmProspectIds.Select(id => batch.Exhausted.Contains(id)
                ? Exhausted(id, failure)
                : new ProspectResult(id, ProspectResultKind.RetryLater, ErrorCode: "SenderFailed", ErrorMessage: failure, ReconcileFirst: true, NotBefore: settledAt))],
            []);
    }

    private static ProspectResult Exhausted(string id, string why) => new(id, ProspectResultKind.Failed, ErrorCode: "RetriesExhausted",
        ErrorMessage: $"Dispatch:MaxAttempts calls carrying this prospect ended without a trusted answer; {why}");

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
                    if (!await store.RenewLeaseAsync(batchId, cancellationToken).ConfigureAwait(false))
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
        // Wall-clock on purpose: this must make progress during shutdown whatever clock the service runs on.
        var deadline = DateTime.UtcNow + (lease.Until - timeProvider.GetUtcNow());
        var delay = TimeSpan.FromMilliseconds(200);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await write(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is Npgsql.NpgsqlException or InvalidOperationException or TimeoutException && DateTime.UtcNow + delay < deadline)
            {
                LogWriteRetry(ex, attempt);
                await Task.Delay(delay, CancellationToken.None).ConfigureAwait(false);
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

    private async Task WaitAsync(TimeSpan wait, CancellationToken cancellationToken)
    {
        if (wait <= TimeSpan.Zero)
        {
            return;
        }

        // Woken by a finished batch; otherwise by the delay (on the injected clock) or shutdown.
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var woken = wake.Reader.WaitToReadAsync(cancel.Token).AsTask();
        var delay = Task.Delay(wait, timeProvider, cancel.Token);
        await Task.WhenAny(woken, delay).ConfigureAwait(false);
        await cancel.CancelAsync().ConfigureAwait(false);
        wake.Reader.TryRead(out _);
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    [LoggerMessage(Level = LogLevel.Information, Message = "Dispatcher {Replica} started: MaxBatchSize {MaxBatchSize}, MaxBatchDelay {MaxBatchDelay}, MaxConcurrentBatches {MaxConcurrentBatches}")]
    private partial void LogStarted(string replica, int maxBatchSize, TimeSpan maxBatchDelay, int maxConcurrentBatches);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Dispatcher could not prepare its result queries at start")]
    private partial void LogWarmUpFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Dispatcher stopping: waiting for {InFlight} in-flight batches")]
    private partial void LogStopping(int inFlight);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dispatch turns fail (e.g. the database is unreachable); retrying every second. Logged once until a turn succeeds again")]
    private partial void LogTurnsFailing(Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Dispatch turn failed again: {ExceptionType}: {Reason}")]
    private partial void LogTurnFailedAgain(string exceptionType, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Dispatch turns work again after {Duration}")]
    private partial void LogTurnsRecovered(TimeSpan duration);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reclaimed {Prospects} prospect rows from batches whose lease expired (outcome unknown: reconcile first)")]
    private partial void LogReclaimed(int prospects);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Batch {BatchId} claimed: flow {FlowId}, {Count} prospects, {Reconcile} to reconcile first")]
    private partial void LogClaimed(Guid batchId, string flowId, int count, int reconcile);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Batch {BatchId} abandoned at shutdown; its prospects go back to Pending (reconcile first)")]
    private partial void LogAbandoned(Guid batchId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Batch {BatchId}: the Gong sender threw; its prospects go back to Pending (reconcile first, one attempt used)")]
    private partial void LogSendFailed(Exception exception, Guid batchId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Batch {BatchId} was reclaimed by another replica (lease expired); its results are left to the reclaimer's reconciliation")]
    private partial void LogLeaseLost(Guid batchId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Batch {BatchId}: results could not be written; the lease will expire and the batch be reconciled")]
    private partial void LogRecordFailed(Exception exception, Guid batchId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Batch {BatchId}: lease renewal failed")]
    private partial void LogRenewFailed(Exception exception, Guid batchId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Writing batch results failed (attempt {Attempt}); retrying")]
    private partial void LogWriteRetry(Exception exception, int attempt);
}
