using System.Globalization;
using Npgsql;
using Worker.Host.Dispatch;
using Worker.Host.Persistence;

namespace Worker.Host.Operations;

/// <summary>Reads a <see cref="StatusReport"/> from the tables of the worker database.</summary>
public static class StatusReportReader
{
    private const string Sql = $"""
        SELECT flow_id, owner_email,
               count(*) FILTER (WHERE status = {StatusSql.Pending}),
               count(*) FILTER (WHERE status = {StatusSql.InFlight}),
               min(created_at) FILTER (WHERE status = {StatusSql.Pending})
        FROM prospect_assignments
        WHERE status IN ({StatusSql.Pending}, {StatusSql.InFlight})
        GROUP BY flow_id, owner_email
        ORDER BY 5 NULLS LAST, flow_id, owner_email;

        SELECT status, coalesce(error_code, ''), count(*)
        FROM prospect_assignments
        WHERE status IN ({StatusSql.Assigned}, {StatusSql.NotAssigned}, {StatusSql.Failed}, {StatusSql.Rejected}) AND updated_at >= @since AND completed_at >= @since
        GROUP BY 1, 2
        ORDER BY 1, 3 DESC, 2;

        SELECT count(*) FILTER (WHERE endpoint = 'assign'),
               coalesce(avg(prospect_count) FILTER (WHERE endpoint = 'assign'), 0),
               count(*) FILTER (WHERE endpoint <> 'assign'),
               count(*) FILTER (WHERE http_status = 429),
               count(*) FILTER (WHERE outcome_class <> 'Answered')
        FROM gong_calls
        WHERE started_at >= @since;

        SELECT blocked_until, blocked_reason, day, day_call_count,
               allowed_rate, rate_reason, rate_changed_at, margin_seconds,
               learned_batch_limit, batch_limit_learned_at, batch_limit_reason, batch_limit_max_batch_size
        FROM rate_gate WHERE id = 1;

        SELECT count(*), min(created_at) FROM outbox_messages WHERE published_at IS NULL AND failed_at IS NULL;

        SELECT count(*) FROM dispatch_batches WHERE completed_at IS NULL AND lease_expires_at < @now;
        """;

    /// <summary>Reads the report in one round trip (the priority lanes are not read: see <see cref="StatusReport.Lanes"/>).</summary>
    /// <param name="dataSource">The worker database.</param>
    /// <param name="now">The current time (UTC); "last hour" is <c>[now − 1 h, now]</c>.</param>
    /// <param name="dailyCallLimit">Gong's daily call budget to compare today's count with.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="NpgsqlException">The database cannot be reached or is not migrated.</exception>
    public static async Task<StatusReport> LoadAsync(NpgsqlDataSource dataSource, DateTimeOffset now, int dailyCallLimit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(Sql, connection);
        command.Parameters.AddWithValue("since", now.AddHours(-1));
        command.Parameters.AddWithValue("now", now);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);

        var groups = await reader.ReadAllAsync(
            row => new BacklogGroup(
                row.GetString(0),
                row.GetString(1),
                row.GetInt64(2),
                row.GetInt64(3),
                row.IsDBNull(4) ? null : row.GetFieldValue<DateTimeOffset>(4)),
            cancellationToken).ConfigureAwait(false);

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var outcomes = await reader.ReadAllAsync(
            row => new OutcomeCount(row.GetString(0), row.GetString(1), row.GetInt64(2)), cancellationToken).ConfigureAwait(false);

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var calls = new CallSummary(
            reader.GetInt64(0),
            Convert.ToDouble(reader.GetValue(1), CultureInfo.InvariantCulture),
            reader.GetInt64(2),
            reader.GetInt64(3),
            reader.GetInt64(4));

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        RateGateState? gate = null;
        if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            gate = new RateGateState(
                reader.IsDBNull(0) ? null : reader.GetFieldValue<DateTimeOffset>(0),
                reader.IsDBNull(1) ? null : reader.GetString(1),
                reader.GetFieldValue<DateOnly>(2),
                reader.GetInt32(3),
                new RateGateController(
                    reader.IsDBNull(4) ? null : reader.GetDouble(4),
                    reader.IsDBNull(5) ? null : reader.GetString(5),
                    reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6),
                    reader.IsDBNull(7) ? null : reader.GetDouble(7),
                    reader.IsDBNull(8) ? null : reader.GetInt32(8),
                    reader.IsDBNull(9) ? null : reader.GetFieldValue<DateTimeOffset>(9),
                    reader.IsDBNull(10) ? null : reader.GetString(10),
                    reader.IsDBNull(11) ? null : reader.GetInt32(11)));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var unpublished = reader.GetInt64(0);
        var oldestUnpublished = reader.IsDBNull(1) ? (DateTimeOffset?)null : reader.GetFieldValue<DateTimeOffset>(1);

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var expiredLeases = reader.GetInt64(0);

        return new StatusReport(now, groups, outcomes, calls, gate, unpublished, oldestUnpublished, expiredLeases, dailyCallLimit);
    }
}
