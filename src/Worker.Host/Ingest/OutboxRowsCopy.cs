using Npgsql;
using NpgsqlTypes;
using Worker.Host.Relay;

namespace Worker.Host.Ingest;

/// <summary>
/// Ingest's binary COPY into <c>outbox_messages</c>: the result event of each request that completes at once
/// (<see cref="IngestRejections.CompletedEvent"/>), in the transaction that stores the request.
/// </summary>
internal static class OutboxRowsCopy
{
    private const string CopyOutboxSql = """
        COPY outbox_messages (id, assignment_request_id, message_type, payload, created_at, attempts, available_at)
        FROM STDIN (FORMAT BINARY)
        """;

    /// <summary>Copies one outbox row per request of <paramref name="requests"/>, keyed by <c>assignment_requests.id</c> from <paramref name="ids"/>.</summary>
    /// <exception cref="NpgsqlException">Postgres failed or refused a value.</exception>
    public static async Task CopyAsync(
        NpgsqlConnection connection, List<ValidatedRequest> requests, Dictionary<string, long> ids, DateTimeOffset now)
    {
        if (requests.Count == 0)
        {
            return;
        }

        await using var importer = await connection.BeginBinaryImportAsync(CopyOutboxSql).ConfigureAwait(false);
        foreach (var request in requests)
        {
            var row = OutboxEvents.ForCompleted(IngestRejections.CompletedEvent(request, now), ids[request.RequestId], now);
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
}
