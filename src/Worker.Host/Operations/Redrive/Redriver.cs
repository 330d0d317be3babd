using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Contracts;
using Worker.Host.Dispatch;
using Worker.Host.Ingest;
using Worker.Host.Persistence;

namespace Worker.Host.Operations.Redrive;

/// <summary>
/// Re-queues final Failed (and chosen NotAssigned) prospects as new requests, one per original request, stored through
/// ingest's own path (<see cref="AssignmentValidator"/> and <see cref="IngestWriter"/>): Pending rows that dispatch sends
/// and, when all have outcomes, one <see cref="FlowAssignmentCompleted"/> for the new requestId. The original request and
/// its event stay as they were.
/// </summary>
/// <remarks>
/// Two steps, each safe to repeat:
/// <list type="number">
/// <item>Mark: in one transaction, with the original request rows locked, each selected row gets
/// <c>redriven_by_request_id</c> = <see cref="DerivedRequestId"/> (generation = re-drives of that request so far + 1).
/// Marked rows are never selected again, so a second identical run finds nothing.</item>
/// <item>Store: every marked group whose request is not stored yet (this run's, or one an interrupted run left) is written
/// through ingest; a request stored before is a duplicate with the same content and adds nothing. Then the new request's
/// <c>redrive_of_request_id</c> records the original.</item>
/// </list>
/// </remarks>
public sealed class Redriver(NpgsqlDataSource dataSource, IngestWriter writer, IOptions<IngestOptions> ingestOptions)
{
    /// <summary>Prefix of every derived requestId.</summary>
    public const string RequestIdPrefix = "redrive:";

    private const string Filter = $"""
        p.redriven_by_request_id IS NULL
        AND ((p.status = {StatusSql.Failed} AND (cardinality(@failed_codes) = 0 OR p.error_code = ANY(@failed_codes)))
          OR (p.status = {StatusSql.NotAssigned} AND p.error_code = ANY(@not_assigned_codes)))
        AND (@request_id::text IS NULL OR p.assignment_request_id IN (SELECT id FROM assignment_requests WHERE request_id = @request_id))
        AND (@flow_id::text IS NULL OR p.flow_id = @flow_id)
        AND (@from::timestamptz IS NULL OR p.completed_at >= @from)
        AND (@before::timestamptz IS NULL OR p.completed_at < @before)
        """;

    /// <summary>
    /// The requestId of the <paramref name="generation"/>-th re-drive of <paramref name="originalRequestId"/>:
    /// <c>redrive:&lt;generation&gt;:&lt;first 128 bits of SHA-256(UTF-8 original id), 32 hex digits&gt;</c>, at most 51
    /// characters, so within the wire contract's 128 whatever the original's length.
    /// </summary>
    public static string DerivedRequestId(string originalRequestId, int generation)
    {
        ArgumentNullException.ThrowIfNull(originalRequestId);
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(originalRequestId));
        return string.Create(CultureInfo.InvariantCulture, $"{RequestIdPrefix}{generation}:{Convert.ToHexStringLower(hash.AsSpan(0, 16))}");
    }

    /// <summary>Counts the rows <paramref name="selection"/> finds, by request, flow, status and error code; changes nothing.</summary>
    /// <exception cref="NpgsqlException">The database cannot be read.</exception>
    public async Task<IReadOnlyList<RedriveCount>> CountAsync(RedriveSelection selection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(selection);
        await using var command = dataSource.CreateCommand($"""
            SELECT r.request_id, p.flow_id, p.status, p.error_code, count(*)::int
            FROM prospect_assignments p JOIN assignment_requests r ON r.id = p.assignment_request_id
            WHERE {Filter}
            GROUP BY r.request_id, p.flow_id, p.status, p.error_code
            ORDER BY r.request_id, p.status, p.error_code
            """);
        AddSelection(command, selection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAllAsync(
            row => new RedriveCount(row.GetString(0), row.GetString(1), row.GetString(2), row.IsDBNull(3) ? null : row.GetString(3), row.GetInt32(4)),
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Marks the selected rows and stores their re-drive requests (see the remarks); returns the requests stored.</summary>
    /// <exception cref="NpgsqlException">The database failed; marked rows are stored by the next run.</exception>
    /// <exception cref="InvalidOperationException">A derived requestId is already stored with other content (not expected).</exception>
    public async Task<IReadOnlyList<RedriveRequest>> RedriveAsync(RedriveSelection selection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(selection);
        await MarkAsync(selection, cancellationToken).ConfigureAwait(false);
        return await StoreMarkedAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task MarkAsync(RedriveSelection selection, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

        // Locking the originals serialises concurrent re-drives of one request, so each generation is taken once.
        var originals = new List<(long Id, string RequestId)>();
        await using (var select = new NpgsqlCommand($"""
            SELECT r.id, r.request_id FROM assignment_requests r
            WHERE r.id IN (SELECT p.assignment_request_id FROM prospect_assignments p WHERE {Filter})
            ORDER BY r.id
            FOR UPDATE
            """, connection, transaction))
        {
            AddSelection(select, selection);
            await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                originals.Add((reader.GetInt64(0), reader.GetString(1)));
            }
        }

        foreach (var (id, requestId) in originals)
        {
            await using var generations = new NpgsqlCommand(
                "SELECT count(DISTINCT redriven_by_request_id)::int FROM prospect_assignments WHERE assignment_request_id = @id AND redriven_by_request_id IS NOT NULL",
                connection, transaction);
            generations.Parameters.AddWithValue("id", id);
            var generation = (int)(await generations.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! + 1;

            // The filter is evaluated again under the lock: rows marked meanwhile by another run are left to it.
            await using var mark = new NpgsqlCommand($"""
                UPDATE prospect_assignments p SET redriven_by_request_id = @derived
                WHERE p.assignment_request_id = @id AND {Filter}
                """, connection, transaction);
            AddSelection(mark, selection);
            mark.Parameters.AddWithValue("id", id);
            mark.Parameters.AddWithValue("derived", DerivedRequestId(requestId, generation));
            await mark.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<IReadOnlyList<RedriveRequest>> StoreMarkedAsync(CancellationToken cancellationToken)
    {
        var groups = new List<(string Derived, string Original, string FlowId, string OwnerEmail, string[] Ids)>();
        await using (var select = dataSource.CreateCommand("""
            SELECT p.redriven_by_request_id, r.request_id, r.flow_id, r.owner_email, array_agg(p.crm_prospect_id ORDER BY p.id)
            FROM prospect_assignments p JOIN assignment_requests r ON r.id = p.assignment_request_id
            WHERE p.redriven_by_request_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM assignment_requests n WHERE n.request_id = p.redriven_by_request_id AND n.redrive_of_request_id IS NOT NULL)
            GROUP BY p.redriven_by_request_id, r.request_id, r.flow_id, r.owner_email
            ORDER BY p.redriven_by_request_id
            """))
        {
            await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                groups.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetFieldValue<string[]>(4)));
            }
        }

        var stored = new List<RedriveRequest>(groups.Count);
        foreach (var group in groups)
        {
            var message = new AssignProspectsToFlow(group.Derived, group.FlowId, group.OwnerEmail, group.Ids);
            var request = AssignmentValidator.Validate(message, ingestOptions.Value.MaxProspectsPerRequest);
            var result = await writer.WriteAsync(request, cancellationToken).ConfigureAwait(false);
            if (result == IngestWriteResult.Conflict)
            {
                throw new InvalidOperationException(
                    $"Re-drive request {group.Derived} (of {group.Original}) is already stored with other content; nothing was added for it.");
            }

            await using var link = dataSource.CreateCommand("UPDATE assignment_requests SET redrive_of_request_id = @original WHERE request_id = @derived");
            link.Parameters.AddWithValue("original", group.Original);
            link.Parameters.AddWithValue("derived", group.Derived);
            await link.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            stored.Add(new RedriveRequest(group.Derived, group.Original, group.Ids.Length, result == IngestWriteResult.Duplicate));
        }

        return stored;
    }

    private static void AddSelection(NpgsqlCommand command, RedriveSelection selection)
    {
        command.Parameters.Add(new NpgsqlParameter("failed_codes", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = selection.FailedErrorCodes.ToArray() });
        command.Parameters.Add(new NpgsqlParameter("not_assigned_codes", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = selection.NotAssignedErrorCodes.ToArray() });
        command.Parameters.Add(new NpgsqlParameter("request_id", NpgsqlDbType.Text) { Value = (object?)selection.RequestId ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("flow_id", NpgsqlDbType.Text) { Value = (object?)selection.FlowId ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("from", NpgsqlDbType.TimestampTz) { Value = (object?)selection.CompletedFrom ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("before", NpgsqlDbType.TimestampTz) { Value = (object?)selection.CompletedBefore ?? DBNull.Value });
    }
}
