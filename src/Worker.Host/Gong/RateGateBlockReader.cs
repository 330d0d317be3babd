using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Host.Dispatch;

namespace Worker.Host.Gong;

/// <summary>
/// Reads and lifts the shared rate gate's block (the <c>rate_gate</c> row's <c>blocked_until</c> and
/// <c>blocked_reason</c>, and its daily count against <c>Gong:DailyCallLimit</c>) for readiness, <c>status</c> and the
/// <c>gate</c> subcommand. The gate alone holds the work back: prospects never carry the block as their own
/// <c>available_at</c>, so lifting it here releases everything at the next dispatch turn of any replica.
/// </summary>
internal sealed class RateGateBlockReader(NpgsqlDataSource dataSource, int dailyCallLimit, TimeProvider time)
{
    private const string ReadSql = "SELECT blocked_until, blocked_reason, day, day_call_count FROM rate_gate WHERE id = 1";

    // One statement: the audit row names exactly the block it lifted, even with a 429 landing at the same moment.
    private const string OpenSql = """
        WITH old AS (
            SELECT blocked_until, blocked_reason FROM rate_gate WHERE id = 1 FOR UPDATE),
        opened AS (
            UPDATE rate_gate SET blocked_until = NULL, blocked_reason = NULL, updated_at = @now WHERE id = 1 RETURNING id)
        INSERT INTO rate_gate_openings (opened_at, opened_by, reason, blocked_until, blocked_reason)
        SELECT @now, @by, @reason, old.blocked_until, old.blocked_reason FROM old, opened
        RETURNING blocked_until, blocked_reason
        """;

    /// <summary>Creates the reader for the DI container (daily limit from <see cref="GongOptions"/>).</summary>
    public RateGateBlockReader(NpgsqlDataSource dataSource, IOptions<GongOptions> options, TimeProvider time)
        : this(dataSource, options.Value.DailyCallLimit, time)
    {
    }

    /// <summary>The block in force now: a 429's block, or the spent daily budget until the next UTC midnight (the later
    /// of the two), or null when calls may start.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    public async Task<GateBlock?> ReadAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ReadSql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            throw new InvalidOperationException("rate_gate has no row with id 1: apply the migrations (the InitialSchema migration seeds it).");
        }

        var now = time.GetUtcNow();
        GateBlock? block = reader.IsDBNull(0) || reader.GetFieldValue<DateTimeOffset>(0) <= now
            ? null
            : new GateBlock(reader.GetFieldValue<DateTimeOffset>(0), reader.IsDBNull(1) ? null : reader.GetString(1));
        var day = reader.GetFieldValue<DateOnly>(2);
        if (day == DateOnly.FromDateTime(now.UtcDateTime) && reader.GetInt32(3) >= dailyCallLimit)
        {
            var midnight = new DateTimeOffset(day.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            if (block is null || block.Until < midnight)
            {
                block = new GateBlock(midnight, $"daily call budget spent ({reader.GetInt32(3)} of Gong:DailyCallLimit {dailyCallLimit} calls today)");
            }
        }

        return block;
    }

    /// <summary>Lifts the 429 block at once for every replica and records who, when and why in <c>rate_gate_openings</c>.
    /// The daily budget is not reset (it follows Gong's own count).</summary>
    /// <param name="openedBy">Who (at most 256 characters).</param>
    /// <param name="reason">Why (at most 1,000 characters).</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>The block that was lifted (null when the gate had none).</returns>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    public async Task<GateBlock?> OpenAsync(string openedBy, string reason, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(OpenSql);
        command.Parameters.Add(new NpgsqlParameter("now", NpgsqlDbType.TimestampTz) { Value = time.GetUtcNow() });
        command.Parameters.Add(new NpgsqlParameter("by", NpgsqlDbType.Varchar) { Value = openedBy });
        command.Parameters.Add(new NpgsqlParameter("reason", NpgsqlDbType.Varchar) { Value = reason });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            throw new InvalidOperationException("rate_gate has no row with id 1: apply the migrations (the InitialSchema migration seeds it).");
        }

        return reader.IsDBNull(0) ? null : new GateBlock(reader.GetFieldValue<DateTimeOffset>(0), reader.IsDBNull(1) ? null : reader.GetString(1));
    }
}
