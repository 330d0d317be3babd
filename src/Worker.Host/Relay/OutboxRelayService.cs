using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.Options;
using Worker.Contracts;
using Npgsql;
using Worker.Host.Operations;
using Worker.Persistence.Entities;

namespace Worker.Host.Relay;

/// <summary>
/// Stage 3 (DESIGN.md "Relay"), running in every replica: publishes unpublished <c>outbox_messages</c> rows through
/// MassTransit with the row id as MessageId and marks them published. At least once: a row is marked only after the
/// broker confirmed it; a failed or timed-out publish leaves the row for a retry with a doubling wait.
/// </summary>
/// <remarks>
/// A round claims due rows (<see cref="OutboxRows"/>: locked for three publish timeouts, so two replicas never publish
/// one row at the same time), publishes them concurrently and marks each. On stop the relay finishes its round and keeps
/// publishing until <see cref="RelayOptions.FlushTimeout"/> after the stop; it is registered before the dispatcher, so it
/// stops after the dispatcher has written its last outcomes. A row whose payload cannot be read back as its message type
/// can never be published: it is dead-lettered (<c>failed_at</c>, <c>failure_reason</c>, counted in
/// <c>flow_assignment.outbox.dead_lettered</c>, logged once as an error, listed by the view <c>ops_outbox_dead_lettered</c>)
/// and the rest keep going. Failing publishes are logged once when they start failing and once when they work again
/// (<see cref="RelayPublishState"/>, also shown by readiness), not once per round.
/// </remarks>
internal sealed partial class OutboxRelayService(
    NpgsqlDataSource dataSource,
    IBus bus,
    OutboxSignal signal,
    RelayPublishState publishState,
    WorkerMetrics metrics,
    IOptions<RelayOptions> options,
    TimeProvider timeProvider,
    ILogger<OutboxRelayService> logger) : BackgroundService
{
    /// <summary>
    /// Log category of MassTransit's own lines about the relay's publishes (its <c>S-FAULT</c> error, one per failed
    /// publish: up to <see cref="RelayOptions.BatchSize"/> a round). Off in appsettings.json (<c>None</c>): the relay logs
    /// the failure once per state change with the reason; set it to <c>Error</c> to see every one.
    /// </summary>
    internal const string PublishLogCategory = "MassTransit.OutboxRelay";

    private static readonly TimeSpan ErrorBackoff = TimeSpan.FromSeconds(1);
    private readonly OutboxRows outbox = new(dataSource);
    private readonly RelayOptions settings = options.Value;

    /// <summary>Publishes one round of due rows; returns how many rows were claimed.</summary>
    internal async Task<int> PublishRoundAsync(CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var rows = await outbox.ClaimAsync(now, now + (settings.PublishTimeout * 3), settings.BatchSize, cancellationToken).ConfigureAwait(false);
        if (rows.Count == 0)
        {
            await ClearFailingIfNothingWaitsAsync(cancellationToken).ConfigureAwait(false);
            return 0;
        }

        var readable = new List<(OutboxMessage Row, FlowAssignmentCompleted Message)>(rows.Count);
        var unreadable = new List<(OutboxMessage Row, string Reason)>();
        foreach (var row in rows)
        {
            try
            {
                readable.Add((row, OutboxEvents.ReadCompleted(row)));
            }
            catch (Exception ex) when (ex is InvalidOperationException or JsonException or NotSupportedException)
            {
                unreadable.Add((row, UserText.Truncate($"{ex.GetType().Name}: {ex.Message}", 2000)));
            }
        }

        if (unreadable.Count > 0)
        {
            await DeadLetterAsync(unreadable, now).ConfigureAwait(false);
        }

        var results = await Task.WhenAll(readable.Select(r => PublishAsync(r.Row, r.Message, cancellationToken))).ConfigureAwait(false);
        var done = timeProvider.GetUtcNow();
        var published = results.Where(r => r.Error is null).Select(r => r.Row).ToList();
        var failed = results.Where(r => r.Error is not null).ToList();
        foreach (var row in published)
        {
            metrics.OutboxPublished(true, done - row.CreatedAt);
        }

        foreach (var failure in failed)
        {
            metrics.OutboxPublished(false, null);
        }

        if (published.Count > 0)
        {
            await outbox.MarkPublishedAsync([.. published.Select(r => r.Id)], done).ConfigureAwait(false);
        }

        RecordPublishState(published.Count, failed, done, cancellationToken);
        if (failed.Count > 0)
        {
            LogPublishFailed(failed[0].Error!, failed.Count, rows.Count);

            // A publish cut short by the caller (the flush deadline at shutdown) is not the broker failing: the row is due
            // again at once, so the next replica publishes it without a retry wait.
            var stopped = cancellationToken.IsCancellationRequested;
            await outbox.MarkFailedAsync(
                [.. failed.Select(f => f.Row.Id)],
                [.. failed.Select(f => stopped && f.Error is OperationCanceledException ? done : done + RetryDelay(f.Row.Attempts))],
                [.. failed.Select(f => Describe(f.Error!))]).ConfigureAwait(false);
        }

        return rows.Count;
    }

    /// <inheritdoc />
    /// <remarks>
    /// The stop signal ends the waits between rounds, never a round: publishes in flight keep waiting for the broker's
    /// confirm until the flush deadline (<see cref="RelayOptions.FlushTimeout"/> after the stop). Cut short at the stop,
    /// a publish the broker already holds would leave its row due again and the flush would publish it a second time
    /// (the same MessageId delivered twice).
    /// </remarks>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var flushDeadline = new CancellationTokenSource();
        await using var startFlushClock = stoppingToken.Register(() => flushDeadline.CancelAfter(settings.FlushTimeout));
        while (!stoppingToken.IsCancellationRequested)
        {
            var claimed = 0;
            try
            {
                claimed = await PublishRoundAsync(flushDeadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (flushDeadline.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Once per failing period, not once per second: a database outage would otherwise log a line a second.
                if (publishState.Failed($"the outbox could not be read or marked: {ex.GetType().Name}: {ex.Message}", timeProvider.GetUtcNow()))
                {
                    LogRoundFailed(ex);
                }

                await signal.WaitAsync(ErrorBackoff, timeProvider, stoppingToken).ConfigureAwait(false);
                continue;
            }

            if (claimed < settings.BatchSize)
            {
                await signal.WaitAsync(settings.PollInterval, timeProvider, stoppingToken).ConfigureAwait(false);
            }
        }

        await FlushAsync(flushDeadline.Token).ConfigureAwait(false);
    }

    /// <summary>Publishes what is left after the stop (the dispatcher's last outcomes) until none is due or the deadline passes.</summary>
    private async Task FlushAsync(CancellationToken deadline)
    {
        try
        {
            while (await PublishRoundAsync(deadline).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogFlushIncomplete(ex);
        }
    }

    /// <summary>
    /// A failing period ends with a publish; a replica with nothing left to publish (another replica published the
    /// rows, or the database came back with nothing waiting) must not stay Degraded, so it ends then too.
    /// </summary>
    private async Task ClearFailingIfNothingWaitsAsync(CancellationToken cancellationToken)
    {
        if (publishState.FailingSince is null)
        {
            return;
        }

        if (!await outbox.AnyWaitingAsync(cancellationToken).ConfigureAwait(false) && publishState.Succeeded() is { } since)
        {
            LogPublishingRecovered(timeProvider.GetUtcNow() - since, 0);
        }
    }

    private void RecordPublishState(int published, List<(OutboxMessage Row, Exception? Error)> failed, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (published > 0)
        {
            if (publishState.Succeeded() is { } since)
            {
                LogPublishingRecovered(now - since, published);
            }
        }
        else if (failed.Count > 0 && !cancellationToken.IsCancellationRequested
                 && publishState.Failed(Describe(failed[0].Error!), now))
        {
            LogPublishingFailing(failed[0].Error!, Describe(failed[0].Error!));
        }
    }

    private async Task DeadLetterAsync(List<(OutboxMessage Row, string Reason)> unreadable, DateTimeOffset now)
    {
        await outbox.DeadLetterAsync([.. unreadable.Select(u => u.Row.Id)], [.. unreadable.Select(u => u.Reason)], now).ConfigureAwait(false);
        metrics.OutboxDeadLettered(unreadable.Count);
        foreach (var (row, reason) in unreadable)
        {
            LogDeadLettered(row.Id, row.MessageType, reason);
        }
    }

    private async Task<(OutboxMessage Row, Exception? Error)> PublishAsync(OutboxMessage row, FlowAssignmentCompleted message, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(settings.PublishTimeout);

        // MassTransit logs through LogContext.Current, an AsyncLocal: this publish (and only this one) logs under
        // PublishLogCategory. The method is async, so the caller's context is back when it returns.
        LogContext.Current = LogContext.CreateLogContext(PublishLogCategory);
        try
        {
            // WaitAsync as well: a publish waiting for a lost connection must not hold the round (and its row lock) past
            // the timeout even if the transport does not observe the token.
            await bus.Publish(message, context => context.MessageId = row.Id, timeout.Token).WaitAsync(timeout.Token).ConfigureAwait(false);
            return (row, null);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return (row, ex);
        }
    }

    private TimeSpan RetryDelay(int attempts)
    {
        var seconds = Math.Pow(2, Math.Clamp(attempts - 1, 0, 20));
        var delay = TimeSpan.FromSeconds(seconds);
        return delay < settings.MaxRetryDelay ? delay : settings.MaxRetryDelay;
    }

    private static string Describe(Exception error) => error is OperationCanceledException
        ? "publish not confirmed within Relay:PublishTimeout"
        : $"{error.GetType().Name}: {error.Message}";

    [LoggerMessage(Level = LogLevel.Debug, Message = "Publishing {Failed} of {Claimed} outbox rows failed; they will be retried")]
    private partial void LogPublishFailed(Exception exception, int failed, int claimed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing result events fails ({Reason}); they wait in the outbox and are retried. Logged once until publishing works again; readiness check 'relay' is Degraded meanwhile")]
    private partial void LogPublishingFailing(Exception exception, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Publishing result events works again after {Duration}; {Published} published in this round")]
    private partial void LogPublishingRecovered(TimeSpan duration, int published);

    [LoggerMessage(Level = LogLevel.Error, Message = "Outbox relay round failed; retrying every second. Logged once until a round publishes again")]
    private partial void LogRoundFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Outbox row {OutboxId} cannot be read as {MessageType} and will never be published (dead-lettered: failed_at set, see ops_outbox_dead_lettered): {Reason}")]
    private partial void LogDeadLettered(Guid outboxId, string messageType, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox flush at shutdown did not finish; the rows left are published by the next replica to run")]
    private partial void LogFlushIncomplete(Exception exception);
}
