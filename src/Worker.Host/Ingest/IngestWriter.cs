using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Operations;

namespace Worker.Host.Ingest;

/// <summary>What storing one request did.</summary>
internal enum IngestWriteResult
{
    /// <summary>New request stored (with its prospect rows and, when it completed at once, its outbox row).</summary>
    Stored,

    /// <summary>The same requestId with the same content was already stored: nothing added.</summary>
    Duplicate,

    /// <summary>The same requestId was already stored with different content: nothing added, the original stands.</summary>
    Conflict,
}

/// <summary>
/// Stores validated requests with group commit: every delivery being consumed at the same moment joins one
/// Postgres transaction (at most <see cref="IngestOptions.MaxMessagesPerTransaction"/> messages, written by
/// <see cref="IngestTransaction"/>), and each caller gets its own result once that transaction has committed. So the
/// broker acknowledges a message only after its rows are durable, a conflict or a bad value affects only its own
/// message, and the round trips per message fall with load (one multi-row INSERT … ON CONFLICT for the requests,
/// binary COPY for prospects and outbox rows).
/// </summary>
/// <remarks>
/// Nothing is held across deliveries: a caller whose delivery is cancelled leaves its request in the queue, where the
/// next writer stores it (the redelivery is then a duplicate).
/// </remarks>
public sealed partial class IngestWriter(
    NpgsqlDataSource dataSource,
    TimeProvider timeProvider,
    WorkerMetrics metrics,
    IOptions<IngestOptions> options,
    ILogger<IngestWriter> logger)
{
    private readonly IngestTransaction transaction = new(dataSource, timeProvider, metrics);
    private readonly ConcurrentQueue<PendingWrite> queue = new();
    private readonly SemaphoreSlim writeLock = new(1, 1);

    /// <summary>Stores <paramref name="request"/> (joining whatever transaction is being formed) and returns once committed.</summary>
    /// <param name="request">The validated request.</param>
    /// <param name="cancellationToken">Cancels the wait for a turn, never a transaction in progress.</param>
    /// <exception cref="NpgsqlException">Postgres unreachable or failed (transient ones are retried by MassTransit).</exception>
    internal async Task<IngestWriteResult> WriteAsync(ValidatedRequest request, CancellationToken cancellationToken)
    {
        var write = new PendingWrite(request);
        queue.Enqueue(write);
        while (!write.Completion.Task.IsCompleted)
        {
            await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (write.Completion.Task.IsCompleted)
                {
                    break;
                }

                var batch = new List<PendingWrite>();
                while (batch.Count < options.Value.MaxMessagesPerTransaction && queue.TryDequeue(out var next))
                {
                    batch.Add(next);
                }

                await WriteBatchAsync(batch).ConfigureAwait(false);
            }
            finally
            {
                writeLock.Release();
            }
        }

        return await write.Completion.Task.ConfigureAwait(false);
    }

    private async Task WriteBatchAsync(List<PendingWrite> batch)
    {
        if (batch.Count == 0)
        {
            return;
        }

        try
        {
            var results = await transaction.WriteAsync([.. batch.Select(w => w.Request)]).ConfigureAwait(false);
            for (var i = 0; i < batch.Count; i++)
            {
                batch[i].Completion.TrySetResult(results[i]);
            }
        }
        catch (Exception ex) when (batch.Count > 1 && !DatabaseOutage.IsOutage(ex))
        {
            // Something in one message (a value Postgres refuses) must not fail the others: write each alone.
            LogBatchSplit(logger, batch.Count, ex);
            foreach (var write in batch)
            {
                await WriteBatchAsync([write]).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            foreach (var write in batch)
            {
                write.Completion.TrySetException(ex);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "A transaction of {Count} ingest messages failed; writing each alone to isolate the cause")]
    private static partial void LogBatchSplit(ILogger logger, int count, Exception exception);

    private sealed class PendingWrite(ValidatedRequest request)
    {
        public ValidatedRequest Request { get; } = request;

        public TaskCompletionSource<IngestWriteResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
