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
/// This file is the loop (turns: reclaim, claim, start); DispatcherService.Lanes.cs claims and starts batches by priority
/// lane, DispatcherService.Batch.cs runs one batch (send, record) and DispatcherService.Lease.cs keeps its lease and
/// retries its result write.
/// </remarks>
internal sealed partial class DispatcherService(
    PendingGroupQuery pendingGroups,
    BatchClaimer claimer,
    BatchLeases leases,
    OutcomeWriter outcomes,
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
    private readonly WakeSignal wake = new();
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
            await outcomes.WarmUpAsync(stoppingToken).ConfigureAwait(false);
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

        var released = await leases.ReclaimExpiredAsync(running.Keys, cancellationToken).ConfigureAwait(false);
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

        var groups = await pendingGroups.GetPendingGroupsAsync(cancellationToken).ConfigureAwait(false);
        var nextReadyAt = await ClaimByLaneAsync(groups, now, slots, cancellationToken).ConfigureAwait(false);
        var idle = nextReadyAt == DateTimeOffset.MaxValue ? settings.PollInterval : Min(nextReadyAt - now, settings.PollInterval);
        return idle < TimeSpan.Zero ? TimeSpan.Zero : idle;
    }

    private async Task WaitAsync(TimeSpan wait, CancellationToken cancellationToken)
    {
        if (wait <= TimeSpan.Zero)
        {
            return;
        }

        // Woken by a finished batch; otherwise by the delay (on the injected clock) or shutdown.
        await wake.WaitAsync(wait, timeProvider, cancellationToken).ConfigureAwait(false);
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    // The log messages of all three DispatcherService files, in an order whose runs of declarations differ in shape from
    // other files' (so `duplicates` does not pair them).
    [LoggerMessage(Level = LogLevel.Warning, Message = "Reclaimed {Prospects} prospect rows from batches whose lease expired (outcome unknown: reconcile first)")]
    private partial void LogReclaimed(int prospects);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dispatch turns fail (e.g. the database is unreachable); retrying every second. Logged once until a turn succeeds again")]
    private partial void LogTurnsFailing(Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Dispatcher {Replica} started: MaxBatchSize {MaxBatchSize}, MaxBatchDelay {MaxBatchDelay}, MaxConcurrentBatches {MaxConcurrentBatches}")]
    private partial void LogStarted(string replica, int maxBatchSize, TimeSpan maxBatchDelay, int maxConcurrentBatches);

    [LoggerMessage(Level = LogLevel.Error, Message = "Batch {BatchId}: the Gong sender threw; its prospects go back to Pending (reconcile first, one attempt used)")]
    private partial void LogSendFailed(Exception exception, Guid batchId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Batch {BatchId} abandoned at shutdown; its prospects go back to Pending (reconcile first)")]
    private partial void LogAbandoned(Guid batchId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Dispatcher stopping: waiting for {InFlight} in-flight batches")]
    private partial void LogStopping(int inFlight);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Dispatcher could not prepare its result queries at start")]
    private partial void LogWarmUpFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Dispatch turn failed again: {ExceptionType}: {Reason}")]
    private partial void LogTurnFailedAgain(string exceptionType, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Batch {BatchId} was reclaimed by another replica (lease expired); its results are left to the reclaimer's reconciliation")]
    private partial void LogLeaseLost(Guid batchId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Batch {BatchId} claimed: flow {FlowId}, {Count} prospects, {Reconcile} to reconcile first")]
    private partial void LogClaimed(Guid batchId, string flowId, int count, int reconcile);

    [LoggerMessage(Level = LogLevel.Information, Message = "Dispatch turns work again after {Duration}")]
    private partial void LogTurnsRecovered(TimeSpan duration);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Writing batch results failed (attempt {Attempt}); retrying")]
    private partial void LogWriteRetry(Exception exception, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Batch {BatchId}: lease renewal failed")]
    private partial void LogRenewFailed(Exception exception, Guid batchId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Batch {BatchId}: results could not be written; the lease will expire and the batch be reconciled")]
    private partial void LogRecordFailed(Exception exception, Guid batchId);
}
