using Npgsql;
using Worker.Host.Persistence;
using Worker.Persistence.Entities;

namespace Worker.Host.Relay;

/// <summary>
/// The relay's statements on <c>outbox_messages</c>: claim due rows, mark them published, failed (due again later) or
/// dead-lettered. Marks are never cancelled: a published row left unmarked is only published again (at least once).
/// </summary>
/// <remarks>
/// A claim takes rows with <c>FOR UPDATE SKIP LOCKED</c> and sets <c>locked_until</c> and <c>attempts + 1</c> in the same
/// statement, so two replicas never publish one row at the same time.
/// </remarks>
internal sealed class OutboxRows(NpgsqlDataSource dataSource)
{
    private const string ClaimSql = """
        UPDATE outbox_messages o SET locked_until = @locked_until, attempts = o.attempts + 1
        FROM (
            SELECT id FROM outbox_messages
            WHERE published_at IS NULL AND failed_at IS NULL AND available_at <= @now AND (locked_until IS NULL OR locked_until <= @now)
            ORDER BY available_at, created_at
            LIMIT @limit
            FOR UPDATE SKIP LOCKED) c
        WHERE o.id = c.id
        RETURNING o.id, o.message_type, o.payload::text, o.created_at, o.attempts
        """;

    private const string PublishedSql = """
        UPDATE outbox_messages SET published_at = @now, locked_until = NULL, last_error = NULL WHERE id = ANY(@ids)
        """;

    private const string FailedSql = """
        UPDATE outbox_messages o SET locked_until = NULL, available_at = v.available_at, last_error = v.error
        FROM unnest(@ids, @available_at, @errors) AS v(id, available_at, error)
        WHERE o.id = v.id
        """;

    private const string DeadLetterSql = """
        UPDATE outbox_messages o SET failed_at = @now, failure_reason = v.reason, last_error = v.reason, locked_until = NULL
        FROM unnest(@ids, @reasons) AS v(id, reason)
        WHERE o.id = v.id
        """;

    /// <summary>Claims up to <paramref name="limit"/> due rows (oldest due first), locked until <paramref name="lockedUntil"/>.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable or failed.</exception>
    public async Task<List<OutboxMessage>> ClaimAsync(DateTimeOffset now, DateTimeOffset lockedUntil, int limit, CancellationToken cancellationToken)
    {
        await using var claim = dataSource.CreateCommand(ClaimSql);
        claim.Parameters.AddWithValue("now", now);
        claim.Parameters.AddWithValue("locked_until", lockedUntil);
        claim.Parameters.AddWithValue("limit", limit);
        await using var reader = await claim.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAllAsync(
            row => new OutboxMessage
            {
                Id = row.GetGuid(0),
                MessageType = row.GetString(1),
                Payload = row.GetString(2),
                CreatedAt = row.GetFieldValue<DateTimeOffset>(3),
                Attempts = row.GetInt32(4),
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether any row waits to be published (unpublished and not dead-lettered, due or not).</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable or failed.</exception>
    public async Task<bool> AnyWaitingAsync(CancellationToken cancellationToken)
    {
        await using var waiting = dataSource.CreateCommand("SELECT EXISTS (SELECT 1 FROM outbox_messages WHERE published_at IS NULL AND failed_at IS NULL)");
        return await waiting.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true;
    }

    /// <summary>Marks the rows published at <paramref name="now"/> and unlocks them.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable or failed.</exception>
    public async Task MarkPublishedAsync(Guid[] ids, DateTimeOffset now)
    {
        await using var mark = dataSource.CreateCommand(PublishedSql);
        mark.Parameters.AddWithValue("now", now);
        mark.Parameters.AddWithValue("ids", ids);
        await mark.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Unlocks rows whose publish failed, each due again at its <paramref name="availableAt"/> with its error.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable or failed.</exception>
    public async Task MarkFailedAsync(Guid[] ids, DateTimeOffset[] availableAt, string[] errors)
    {
        await using var mark = dataSource.CreateCommand(FailedSql);
        mark.Parameters.AddWithValue("ids", ids);
        mark.Parameters.AddWithValue("available_at", availableAt);
        mark.Parameters.AddWithValue("errors", errors);
        await mark.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Dead-letters rows that can never be published: <c>failed_at</c> and <c>failure_reason</c> set, never claimed again.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable or failed.</exception>
    public async Task DeadLetterAsync(Guid[] ids, string[] reasons, DateTimeOffset now)
    {
        await using var mark = dataSource.CreateCommand(DeadLetterSql);
        mark.Parameters.AddWithValue("now", now);
        mark.Parameters.AddWithValue("ids", ids);
        mark.Parameters.AddWithValue("reasons", reasons);
        await mark.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
    }
}
