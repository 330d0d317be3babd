using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Host.Dispatch;

namespace Worker.Host.Gong;

/// <summary>
/// The credentials pause every replica shares (<c>gong_credentials_pause</c>, one row): one outage is one pause, and
/// the probe backoff grows by one step per probe Gong refused, not per 401 answer. A 401 to a call that started before
/// the current <c>next_probe_at</c> (a call already in flight when the outage began, or sent before the pause was seen)
/// changes nothing; the first 401 to a call started at or after it doubles the wait. Times come from the injected
/// <see cref="TimeProvider"/>, like the rate gate's.
/// </summary>
internal sealed class CredentialsPauseStore(NpgsqlDataSource dataSource, IOptions<GongOptions> options, TimeProvider time)
{
    // The row lock serialises concurrent 401s: each reads the version the previous one left, so of several probes
    // answered at once only the first finds started >= next_probe_at.
    private const string UnauthorizedSql = """
        INSERT INTO gong_credentials_pause AS p (id, paused_since, reason, probes, next_probe_at, updated_at)
        VALUES (1, @now, @reason, 0, @now + @base, @now)
        ON CONFLICT (id) DO UPDATE SET
            paused_since = COALESCE(p.paused_since, @now),
            reason = @reason,
            probes = CASE WHEN p.paused_since IS NULL THEN 0
                          WHEN @started >= p.next_probe_at THEN p.probes + 1
                          ELSE p.probes END,
            next_probe_at = CASE WHEN p.paused_since IS NULL THEN @now + @base
                                 WHEN @started >= p.next_probe_at THEN @now + LEAST(@cap, @base * power(2, LEAST(p.probes + 1, 20)))
                                 ELSE p.next_probe_at END,
            updated_at = @now
        RETURNING paused_since, reason, next_probe_at, probes
        """;

    // Only a call started after the pause began proves the credentials work again.
    private const string AcceptedSql = """
        UPDATE gong_credentials_pause
        SET paused_since = NULL, reason = NULL, probes = 0, next_probe_at = NULL, updated_at = @now
        WHERE id = 1 AND paused_since IS NOT NULL AND paused_since <= @started
        """;

    private const string ReadSql = "SELECT paused_since, reason, next_probe_at, probes FROM gong_credentials_pause WHERE id = 1";

    /// <summary>Records a 401 to a call that started at <paramref name="callStartedAt"/> and returns the pause in force.</summary>
    /// <param name="reason">Gong's message (never a secret); cut to 512 characters.</param>
    /// <param name="callStartedAt">When the refused call started (UTC).</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task<GongPause> RecordUnauthorizedAsync(string reason, DateTimeOffset callStartedAt, CancellationToken cancellationToken)
    {
        var o = options.Value;
        await using var command = dataSource.CreateCommand(UnauthorizedSql);
        command.Parameters.Add(new NpgsqlParameter("now", NpgsqlDbType.TimestampTz) { Value = time.GetUtcNow() });
        command.Parameters.Add(new NpgsqlParameter("started", NpgsqlDbType.TimestampTz) { Value = callStartedAt.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter("reason", NpgsqlDbType.Varchar) { Value = Cut(reason) });
        command.Parameters.Add(new NpgsqlParameter("base", NpgsqlDbType.Interval) { Value = o.UnauthorizedProbeDelay });
        command.Parameters.Add(new NpgsqlParameter("cap", NpgsqlDbType.Interval) { Value = o.UnauthorizedMaxProbeDelay });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return ReadPause(reader)!;
    }

    /// <summary>Ends the pause when Gong accepted (any answer but 401) a call started after the pause began.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task<bool> RecordAcceptedAsync(DateTimeOffset callStartedAt, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(AcceptedSql);
        command.Parameters.Add(new NpgsqlParameter("now", NpgsqlDbType.TimestampTz) { Value = time.GetUtcNow() });
        command.Parameters.Add(new NpgsqlParameter("started", NpgsqlDbType.TimestampTz) { Value = callStartedAt.ToUniversalTime() });
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    /// <summary>The pause in force, or null.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task<GongPause?> ReadAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ReadSql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadPause(reader) : null;
    }

    private static GongPause? ReadPause(NpgsqlDataReader reader) => reader.IsDBNull(0)
        ? null
        : new GongPause(
            reader.IsDBNull(1) ? "401 Unauthorized" : reader.GetString(1),
            reader.GetFieldValue<DateTimeOffset>(0),
            reader.GetFieldValue<DateTimeOffset>(2))
        { RefusedProbes = reader.GetInt32(3) };

    // Never split a surrogate pair: Npgsql's strict UTF-8 encoder refuses a lone half.
    private static string Cut(string reason) => reason.Length <= 512 ? reason : reason[..(char.IsHighSurrogate(reason[511]) ? 511 : 512)];
}
