using Npgsql;
using NpgsqlTypes;
using Worker.Persistence.Entities;

namespace Worker.Host.Ingest;

/// <summary>
/// Ingest's binary COPY into <c>prospect_assignments</c>: one Pending row per unique valid id of a request to send,
/// one Rejected row per id stored as rejected (<see cref="IngestRejections.Outcomes"/>), all with 0 attempts.
/// </summary>
internal static class ProspectRowsCopy
{
    private const string CopyProspectsSql = """
        COPY prospect_assignments (assignment_request_id, crm_prospect_id, flow_id, owner_email, status,
            error_code, error_message, reconciled, reconcile_first, attempts, available_at, created_at, updated_at, completed_at, priority)
        FROM STDIN (FORMAT BINARY)
        """;

    /// <summary>Copies the rows of <paramref name="requests"/>, keyed by <c>assignment_requests.id</c> from <paramref name="ids"/>.</summary>
    /// <exception cref="NpgsqlException">Postgres failed or refused a value.</exception>
    public static async Task CopyAsync(
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
            if (!request.IsRejected)
            {
                foreach (var id in request.ValidIds)
                {
                    await WriteProspectAsync(importer, requestKey, request, id, ProspectAssignmentStatus.Pending, null, null, now).ConfigureAwait(false);
                }
            }

            foreach (var rejected in IngestRejections.Outcomes(request))
            {
                await WriteProspectAsync(importer, requestKey, request, rejected.CrmProspectId, ProspectAssignmentStatus.Rejected, rejected.ErrorCode, rejected.ErrorMessage, now).ConfigureAwait(false);
            }
        }

        await importer.CompleteAsync().ConfigureAwait(false);
    }

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
}
