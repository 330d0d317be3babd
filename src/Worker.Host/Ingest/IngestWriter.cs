using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Contracts;
using Worker.Host.Dispatch;
using Worker.Host.Operations;
using Worker.Host.Relay;
using Worker.Persistence.Entities;

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
/// Postgres transaction (at most <see cref="IngestOptions.MaxMessagesPerTransaction"/> messages), and each caller
/// gets its own result once that transaction has committed. So the broker acknowledges a message only after its
/// rows are durable, a conflict or a bad value affects only its own message, and the round trips per message fall
/// with load (one multi-row INSERT … ON CONFLICT for the requests, binary COPY for prospects and outbox rows).
/// </summary>
/// <remarks>
/// Idempotency rests on the unique index on <c>assignment_requests.request_id</c>: concurrent inserts of one
/// requestId (two replicas, or a redelivery) wait on each other in Postgres and exactly one row wins; the loser
/// compares content hashes. Nothing is held across deliveries: a caller whose delivery is cancelled leaves its
/// request in the queue, where the next writer stores it (the redelivery is then a duplicate).
/// </remarks>
public sealed partial class IngestWriter(
    NpgsqlDataSource dataSource,
    TimeProvider timeProvider,
    WorkerMetrics metrics,
    IOptions<IngestOptions> options,
    ILogger<IngestWriter> logger)
{
    private const string InsertRequestsSql = """
        INSERT INTO assignment_requests (request_id, flow_id, owner_email, owner_email_normalized, status,
            prospect_count, pending_count, assigned_count, not_assigned_count, failed_count, rejected_count,
            content_hash, rejection_reason, received_at, completed_at, priority)
        SELECT r.request_id, r.flow_id, r.owner_email, r.owner_email_normalized, r.status,
            r.prospect_count, r.pending_count, 0, 0, 0, r.rejected_count,
            r.content_hash, r.rejection_reason, @now, CASE WHEN r.status IS NULL THEN NULL ELSE @now END, r.priority
        FROM unnest(@request_id, @flow_id, @owner_email, @owner_email_normalized, @status,
            @prospect_count, @pending_count, @rejected_count, @content_hash, @rejection_reason, @priority)
            AS r(request_id, flow_id, owner_email, owner_email_normalized, status,
                 prospect_count, pending_count, rejected_count, content_hash, rejection_reason, priority)
        ORDER BY r.request_id
        ON CONFLICT (request_id) DO NOTHING
        RETURNING id, request_id
        """;

    private const string CopyProspectsSql = """
        COPY prospect_assignments (assignment_request_id, crm_prospect_id, flow_id, owner_email, status,
            error_code, error_message, reconciled, reconcile_first, attempts, available_at, created_at, updated_at, completed_at, priority)
        FROM STDIN (FORMAT BINARY)
        """;

    private const string CopyOutboxSql = """
        COPY outbox_messages (id, assignment_request_id, message_type, payload, created_at, attempts, available_at)
        FROM STDIN (FORMAT BINARY)
        """;

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
            var results = await WriteTransactionAsync(batch).ConfigureAwait(false);
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

    private async Task<IngestWriteResult[]> WriteTransactionAsync(List<PendingWrite> batch)
    {
        var now = timeProvider.GetUtcNow();

        // One row per requestId reaches the INSERT; later copies in the batch are judged by hash after commit.
        var first = new Dictionary<string, ValidatedRequest>(StringComparer.Ordinal);
        foreach (var write in batch)
        {
            first.TryAdd(write.Request.RequestId, write.Request);
        }

        var candidates = first.Values.ToList();
        await using var connection = await dataSource.OpenConnectionAsync().ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync().ConfigureAwait(false);

        var inserted = await InsertRequestsAsync(connection, transaction, candidates, now).ConfigureAwait(false);
        var existing = await ReadExistingHashesAsync(
            connection, transaction, candidates.Where(r => !inserted.ContainsKey(r.RequestId)).Select(r => r.RequestId).ToArray()).ConfigureAwait(false);

        var stored = candidates.Where(r => inserted.ContainsKey(r.RequestId)).ToList();
        await CopyProspectsAsync(connection, stored, inserted, now).ConfigureAwait(false);
        await CopyOutboxAsync(connection, stored.Where(r => r.CompletesAtOnce).ToList(), inserted, now).ConfigureAwait(false);
        await transaction.CommitAsync().ConfigureAwait(false);

        var results = new IngestWriteResult[batch.Count];
        for (var i = 0; i < batch.Count; i++)
        {
            var request = batch[i].Request;
            if (inserted.ContainsKey(request.RequestId) && ReferenceEquals(first[request.RequestId], request))
            {
                results[i] = IngestWriteResult.Stored;
                RecordStored(request);
                continue;
            }

            var storedHash = inserted.ContainsKey(request.RequestId) ? first[request.RequestId].ContentHash : existing.GetValueOrDefault(request.RequestId);
            results[i] = string.Equals(storedHash, request.ContentHash, StringComparison.Ordinal) ? IngestWriteResult.Duplicate : IngestWriteResult.Conflict;
            metrics.MessageIngested(results[i] == IngestWriteResult.Duplicate ? "duplicate" : "conflict");
        }

        return results;
    }

    private void RecordStored(ValidatedRequest request)
    {
        metrics.MessageIngested(request.CompletesAtOnce ? "rejected" : "accepted");
        if (request.IsRejected && request.ValidIds.Count > 0)
        {
            metrics.ProspectOutcomes(nameof(ProspectStatus.Rejected), "RequestRejected", request.ValidIds.Count);
        }

        if (request.RejectedIds.Count > 0)
        {
            metrics.ProspectOutcomes(nameof(ProspectStatus.Rejected), "InvalidProspectId", request.RejectedIds.Count);
        }
    }

    private static async Task<Dictionary<string, long>> InsertRequestsAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, List<ValidatedRequest> requests, DateTimeOffset now)
    {
        await using var command = new NpgsqlCommand(InsertRequestsSql, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", NpgsqlDbType.TimestampTz) { TypedValue = now });
        AddArray(command, "request_id", NpgsqlDbType.Text, requests.Select(r => r.RequestId));
        AddArray(command, "flow_id", NpgsqlDbType.Text, requests.Select(r => r.FlowId));
        AddArray(command, "owner_email", NpgsqlDbType.Text, requests.Select(r => r.OwnerEmail));
        AddArray(command, "owner_email_normalized", NpgsqlDbType.Text, requests.Select(r => r.OwnerEmailNormalized));
        AddArray(command, "status", NpgsqlDbType.Text, requests.Select(r => r.CompletesAtOnce ? nameof(RequestStatus.Rejected) : null));
        AddArray(command, "prospect_count", NpgsqlDbType.Integer, requests.Select(r => r.ProspectCount));
        AddArray(command, "pending_count", NpgsqlDbType.Integer, requests.Select(r => r.IsRejected ? 0 : r.ValidIds.Count));
        AddArray(command, "rejected_count", NpgsqlDbType.Integer, requests.Select(r => r.IsRejected ? r.ProspectCount : r.RejectedIds.Count));
        AddArray(command, "content_hash", NpgsqlDbType.Text, requests.Select(r => r.ContentHash));
        AddArray(command, "rejection_reason", NpgsqlDbType.Text, requests.Select(RejectionReason));
        AddArray(command, "priority", NpgsqlDbType.Text, requests.Select(r => r.Priority?.ToString()));

        var inserted = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
        while (await reader.ReadAsync().ConfigureAwait(false))
        {
            inserted[reader.GetString(1)] = reader.GetInt64(0);
        }

        return inserted;
    }

    private static void AddArray<T>(NpgsqlCommand command, string name, NpgsqlDbType elementType, IEnumerable<T> values) =>
        command.Parameters.Add(new NpgsqlParameter(name, NpgsqlDbType.Array | elementType) { Value = values.ToArray() });

    private static string? RejectionReason(ValidatedRequest request)
    {
        if (request.IsRejected)
        {
            return string.Join('\n', request.Errors);
        }

        return request.ValidIds.Count == 0 ? NoValidIdReason(request) : null;
    }

    private static string NoValidIdReason(ValidatedRequest request) =>
        $"crmProspectIds: none of the {request.RejectedIds.Count} unique ids is valid (each must be 1 to {AssignmentValidator.MaxProspectIdLength} characters without control characters).";

    private static async Task<Dictionary<string, string>> ReadExistingHashesAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string[] requestIds)
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        if (requestIds.Length == 0)
        {
            return hashes;
        }

        await using var command = new NpgsqlCommand(
            "SELECT request_id, content_hash FROM assignment_requests WHERE request_id = ANY(@ids)", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter("ids", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = requestIds });
        await using var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
        while (await reader.ReadAsync().ConfigureAwait(false))
        {
            hashes[reader.GetString(0)] = reader.GetString(1);
        }

        return hashes;
    }

    private static async Task CopyProspectsAsync(
        NpgsqlConnection connection, List<ValidatedRequest> requests, Dictionary<string, long> ids, DateTimeOffset now)
    {
        if (requests.Count == 0 || requests.All(r => r.ProspectCount == 0))
        {
            return;
        }

        await using var importer = await connection.BeginBinaryImportAsync(CopyProspectsSql).ConfigureAwait(false);
        foreach (var request in requests)
        {
            var requestKey = ids[request.RequestId];
            foreach (var id in request.ValidIds)
            {
                if (request.IsRejected)
                {
                    await WriteProspectAsync(importer, requestKey, request, id, ProspectAssignmentStatus.Rejected, "RequestRejected", RequestRejectedMessage, now).ConfigureAwait(false);
                }
                else
                {
                    await WriteProspectAsync(importer, requestKey, request, id, ProspectAssignmentStatus.Pending, null, null, now).ConfigureAwait(false);
                }
            }

            foreach (var rejected in request.RejectedIds)
            {
                await WriteProspectAsync(importer, requestKey, request, rejected.CrmProspectId, ProspectAssignmentStatus.Rejected, "InvalidProspectId", rejected.Reason, now).ConfigureAwait(false);
            }
        }

        await importer.CompleteAsync().ConfigureAwait(false);
    }

    private const string RequestRejectedMessage = "The request was rejected as a whole (see its rejection reason); this id was not sent.";

    private static async Task WriteProspectAsync(
        NpgsqlBinaryImporter importer, long requestKey, ValidatedRequest request, string crmProspectId,
        ProspectAssignmentStatus status, string? errorCode, string? errorMessage, DateTimeOffset now)
    {
        await importer.StartRowAsync().ConfigureAwait(false);
        await importer.WriteAsync(requestKey, NpgsqlDbType.Bigint).ConfigureAwait(false);
        await importer.WriteAsync(crmProspectId, NpgsqlDbType.Varchar).ConfigureAwait(false);
        await importer.WriteAsync(request.FlowId, NpgsqlDbType.Varchar).ConfigureAwait(false);
        await importer.WriteAsync(request.OwnerEmailNormalized, NpgsqlDbType.Varchar).ConfigureAwait(false);
        await importer.WriteAsync(status.ToString(), NpgsqlDbType.Varchar).ConfigureAwait(false);
        await WriteNullableAsync(importer, errorCode, NpgsqlDbType.Varchar).ConfigureAwait(false);
        await WriteNullableAsync(importer, errorMessage, NpgsqlDbType.Text).ConfigureAwait(false);
        await importer.WriteAsync(false, NpgsqlDbType.Boolean).ConfigureAwait(false);
        await importer.WriteAsync(false, NpgsqlDbType.Boolean).ConfigureAwait(false);
        await importer.WriteAsync(0, NpgsqlDbType.Integer).ConfigureAwait(false);
        await importer.WriteAsync(now, NpgsqlDbType.TimestampTz).ConfigureAwait(false);
        await importer.WriteAsync(now, NpgsqlDbType.TimestampTz).ConfigureAwait(false);
        await importer.WriteAsync(now, NpgsqlDbType.TimestampTz).ConfigureAwait(false);
        if (status == ProspectAssignmentStatus.Pending)
        {
            await importer.WriteNullAsync().ConfigureAwait(false);
        }
        else
        {
            await importer.WriteAsync(now, NpgsqlDbType.TimestampTz).ConfigureAwait(false);
        }

        await importer.WriteAsync((request.Priority ?? ProspectPriority.Normal).ToString(), NpgsqlDbType.Varchar).ConfigureAwait(false);
    }

    private static async Task WriteNullableAsync(NpgsqlBinaryImporter importer, string? value, NpgsqlDbType type)
    {
        if (value is null)
        {
            await importer.WriteNullAsync().ConfigureAwait(false);
        }
        else
        {
            await importer.WriteAsync(value, type).ConfigureAwait(false);
        }
    }

    private static async Task CopyOutboxAsync(
        NpgsqlConnection connection, List<ValidatedRequest> requests, Dictionary<string, long> ids, DateTimeOffset now)
    {
        if (requests.Count == 0)
        {
            return;
        }

        await using var importer = await connection.BeginBinaryImportAsync(CopyOutboxSql).ConfigureAwait(false);
        foreach (var request in requests)
        {
            var row = OutboxEvents.ForCompleted(CompletedEvent(request, now), ids[request.RequestId], now);
            await importer.StartRowAsync().ConfigureAwait(false);
            await importer.WriteAsync(row.Id, NpgsqlDbType.Uuid).ConfigureAwait(false);
            await importer.WriteAsync(row.AssignmentRequestId!.Value, NpgsqlDbType.Bigint).ConfigureAwait(false);
            await importer.WriteAsync(row.MessageType, NpgsqlDbType.Varchar).ConfigureAwait(false);
            await importer.WriteAsync(row.Payload, NpgsqlDbType.Jsonb).ConfigureAwait(false);
            await importer.WriteAsync(row.CreatedAt, NpgsqlDbType.TimestampTz).ConfigureAwait(false);
            await importer.WriteAsync(0, NpgsqlDbType.Integer).ConfigureAwait(false);
            await importer.WriteAsync(row.AvailableAt, NpgsqlDbType.TimestampTz).ConfigureAwait(false);
        }

        await importer.CompleteAsync().ConfigureAwait(false);
    }

    /// <summary>The event of a request that completes at ingest: status Rejected, one outcome per unique id.</summary>
    internal static FlowAssignmentCompleted CompletedEvent(ValidatedRequest request, DateTimeOffset now)
    {
        var outcomes = new List<ProspectOutcome>(request.ProspectCount);
        if (request.IsRejected)
        {
            outcomes.AddRange(request.ValidIds.Select(id => new ProspectOutcome(id, ProspectStatus.Rejected, ErrorCode: "RequestRejected", ErrorMessage: RequestRejectedMessage)));
        }

        outcomes.AddRange(request.RejectedIds.Select(r => new ProspectOutcome(r.CrmProspectId, ProspectStatus.Rejected, ErrorCode: "InvalidProspectId", ErrorMessage: r.Reason)));
        var errors = request.IsRejected ? request.Errors : [NoValidIdReason(request)];
        return new FlowAssignmentCompleted(
            request.RequestId, request.FlowId, request.OwnerEmail, RequestStatus.Rejected, now, now, outcomes, errors)
        {
            Priority = PriorityLanes.ToWire(request.Priority),
        };
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "A transaction of {Count} ingest messages failed; writing each alone to isolate the cause")]
    private static partial void LogBatchSplit(ILogger logger, int count, Exception exception);

    private sealed class PendingWrite(ValidatedRequest request)
    {
        public ValidatedRequest Request { get; } = request;

        public TaskCompletionSource<IngestWriteResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
