using Npgsql;
using NpgsqlTypes;
using Worker.Contracts;

namespace Worker.Host.Ingest;

/// <summary>
/// Ingest's statements on <c>assignment_requests</c>: one multi-row INSERT … ON CONFLICT DO NOTHING for a batch of
/// requests, and the content hashes of the requestIds that were stored before.
/// </summary>
internal static class AssignmentRequestRows
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

    /// <summary>
    /// Inserts the requests (one per requestId) and returns <c>assignment_requests.id</c> by requestId for those this
    /// statement stored; a requestId stored before (or by a concurrent transaction that committed first) is absent.
    /// </summary>
    /// <exception cref="NpgsqlException">Postgres failed or refused a value.</exception>
    public static async Task<Dictionary<string, long>> InsertAsync(
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
        AddArray(command, "rejection_reason", NpgsqlDbType.Text, requests.Select(IngestRejections.RejectionReason));
        AddArray(command, "priority", NpgsqlDbType.Text, requests.Select(r => r.Priority?.ToString()));

        var inserted = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
        while (await reader.ReadAsync().ConfigureAwait(false))
        {
            inserted[reader.GetString(1)] = reader.GetInt64(0);
        }

        return inserted;
    }

    /// <summary>The stored content hash by requestId of each of <paramref name="requestIds"/> that is stored.</summary>
    /// <exception cref="NpgsqlException">Postgres failed.</exception>
    public static async Task<Dictionary<string, string>> ReadExistingHashesAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string[] requestIds)
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

    private static void AddArray<T>(NpgsqlCommand command, string name, NpgsqlDbType elementType, IEnumerable<T> values) =>
        command.Parameters.Add(new NpgsqlParameter(name, NpgsqlDbType.Array | elementType) { Value = values.ToArray() });
}
