using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Host.Operations;
using Worker.Persistence.Entities;

namespace Worker.Host.Gong;

/// <summary>
/// The SQL of the shared rate gate: each method is one statement on the <c>rate_gate</c> row (id 1) and one round trip,
/// timed for the clock offset (<see cref="RateGateClockOffset"/>). The rules a slot satisfies and the allowed-rate
/// controller (AIMD) are described on <see cref="PostgresRateGate"/>; they are evaluated here, in Postgres, so every
/// replica sees one state.
/// </summary>
internal sealed class RateGateRow(NpgsqlDataSource dataSource, IOptions<GongOptions> options, TimeProvider time, RateGateClockOffset clock)
{
    /// <summary>The allowed rate is cut at most once per this long, however many calls were in flight.</summary>
    private static readonly TimeSpan DecreaseHold = TimeSpan.FromSeconds(2);

    // The FOR UPDATE in the first CTE makes concurrent callers queue on the row and read its latest committed
    // version (READ COMMITTED re-reads a row it waited for), so every computed value is based on the state the
    // previous caller left; the outer UPDATE then writes it. The clock is read per row of `cur`, i.e. after the lock
    // was granted. One statement, one round trip.
    private const string TakeSlotSql = $"""
        WITH cur AS (
            SELECT next_slot_at, blocked_until, blocked_reason, day, day_call_count, recent_starts,
                   allowed_rate, rate_reason, rate_changed_at
            FROM rate_gate WHERE id = 1 FOR UPDATE),
        clocked AS (
            SELECT cur.*, COALESCE(@now, clock_timestamp()) AS now FROM cur),
        rate AS (
            SELECT clocked.*,
                (clocked.allowed_rate IS NOT NULL AND (clocked.allowed_rate >= @max_rate
                    OR clocked.now - clocked.rate_changed_at >= @increase_interval)) AS rate_changes,
                CASE WHEN clocked.allowed_rate IS NULL OR clocked.allowed_rate >= @max_rate THEN NULL
                     WHEN clocked.now - clocked.rate_changed_at >= @increase_interval THEN
                          CASE WHEN clocked.allowed_rate + @increase_step >= @max_rate THEN NULL ELSE clocked.allowed_rate + @increase_step END
                     ELSE clocked.allowed_rate END AS rate
            FROM clocked),
        base AS (
            SELECT rate.*, GREATEST(
                rate.now,
                rate.next_slot_at,
                COALESCE(rate.blocked_until, rate.now),
                CASE WHEN cardinality(rate.recent_starts) >= @per_second
                     THEN rate.recent_starts[cardinality(rate.recent_starts) - @per_second + 1] + interval '1 second'
                     ELSE rate.now END) AS candidate
            FROM rate),
        slot AS (
            SELECT base.*, CASE
                WHEN (base.candidate AT TIME ZONE 'UTC')::date = base.day AND base.day_call_count >= @daily_limit
                THEN ((base.day + 1)::timestamp AT TIME ZONE 'UTC')
                ELSE base.candidate END AS at
            FROM base),
        taken AS (
            UPDATE rate_gate g SET
                next_slot_at = slot.at + make_interval(secs => 1.0 / COALESCE(slot.rate, @max_rate)),
                day = (slot.at AT TIME ZONE 'UTC')::date,
                day_call_count = CASE WHEN (slot.at AT TIME ZONE 'UTC')::date = slot.day THEN slot.day_call_count + 1 ELSE 1 END,
                recent_starts = (slot.recent_starts || (slot.at + @margin))[GREATEST(1, cardinality(slot.recent_starts) + 2 - @per_second):],
                allowed_rate = slot.rate,
                rate_reason = CASE WHEN slot.rate_changes THEN (CASE WHEN slot.rate IS NULL THEN '{PostgresRateGate.RateConfigured}' ELSE '{PostgresRateGate.RateClimbing}' END) ELSE slot.rate_reason END,
                rate_changed_at = CASE WHEN slot.rate_changes THEN slot.now ELSE slot.rate_changed_at END,
                margin_seconds = @margin_seconds,
                updated_at = slot.now
            FROM slot
            WHERE g.id = 1 AND slot.at <= slot.now + LEAST(@max_wait, COALESCE(@reserve_ahead, @max_wait))
            RETURNING g.id)
        SELECT slot.at, EXISTS (SELECT 1 FROM taken), slot.blocked_until, slot.blocked_reason, slot.now,
               COALESCE(slot.rate, @max_rate), COALESCE(CASE WHEN slot.rate_changes THEN (CASE WHEN slot.rate IS NULL THEN '{PostgresRateGate.RateConfigured}' ELSE '{PostgresRateGate.RateClimbing}' END) ELSE slot.rate_reason END, '{PostgresRateGate.RateConfigured}')
        FROM slot
        """;

    // A 429 blocks the gate and, once per DecreaseHold, cuts the allowed rate (AIMD).
    private const string BlockSql = $"""
        WITH cur AS (SELECT *, COALESCE(@now, clock_timestamp()) AS now FROM rate_gate WHERE id = 1 FOR UPDATE)
        UPDATE rate_gate g SET
            blocked_until = GREATEST(COALESCE(cur.blocked_until, @until), @until),
            blocked_reason = CASE WHEN cur.blocked_until IS NULL OR cur.blocked_until <= @until THEN @reason ELSE cur.blocked_reason END,
            allowed_rate = CASE WHEN cur.rate_reason = '{PostgresRateGate.RateThrottled}' AND cur.rate_changed_at > cur.now - @hold THEN cur.allowed_rate
                                ELSE GREATEST(@min_rate, LEAST(COALESCE(cur.allowed_rate, @max_rate), @max_rate) * @factor) END,
            rate_changed_at = CASE WHEN cur.rate_reason = '{PostgresRateGate.RateThrottled}' AND cur.rate_changed_at > cur.now - @hold THEN cur.rate_changed_at ELSE cur.now END,
            rate_reason = '{PostgresRateGate.RateThrottled}',
            updated_at = cur.now
        FROM cur
        WHERE g.id = 1
        RETURNING g.allowed_rate
        """;

    // A caller late for its slot moves it to a new slot shortly ahead (now + lead, never before the old slot) and its
    // recorded latest arrival with it, but only while no later slot depends on it: its entry is still among the last
    // RequestsPerSecond (the slot RequestsPerSecond places later, whose window starts at this entry, is not taken yet
    // and will be computed from the new value; every slot taken after it was spaced after the old slot, and spacing
    // keeps the later ones at least a second after the new arrival). It also moves at most @max_move after the slot
    // first taken (PostgresRateGate.MaxMove: the next slot keeps time for a 429's block to reach it), not into a 429 block,
    // and not into the next UTC day (the call is counted on the first slot's day). Matched by value: the same
    // expression as when the slot was taken. The clock is read after the lock was granted, as in TakeSlotSql.
    private const string ReclaimSql = """
        WITH cur AS (
            SELECT recent_starts, blocked_until FROM rate_gate WHERE id = 1 FOR UPDATE),
        clocked AS (
            SELECT cur.*, COALESCE(@now, clock_timestamp()) AS now FROM cur),
        moved AS (
            SELECT clocked.*, GREATEST(clocked.now + @lead, @slot) AS at FROM clocked)
        UPDATE rate_gate g SET
            recent_starts = array_replace(moved.recent_starts, @slot + @margin, moved.at + @margin),
            updated_at = moved.now
        FROM moved
        WHERE g.id = 1 AND (@slot + @margin) = ANY(moved.recent_starts)
          AND moved.at <= @first_slot + @max_move
          AND (moved.blocked_until IS NULL OR moved.blocked_until <= moved.at)
          AND (moved.at AT TIME ZONE 'UTC')::date = (@first_slot AT TIME ZONE 'UTC')::date
        RETURNING moved.at
        """;

    // A call that reached its connection late (a stall after the lane's check) arrives later than recorded: its entry
    // moves to the departure plus the margin, so the slot RequestsPerSecond places later is spaced a second after the
    // real arrival. Only while that slot is not taken yet (the entry is still among the last RequestsPerSecond): then
    // it is computed from the new value. Matched by value, as in ReclaimSql; never earlier than recorded, so the gate
    // is only ever more conservative for it. A stall longer than the spacing can leave the entry later than the one
    // taken after it; the window rule reads entries in the order slots were taken (the oldest of the last
    // RequestsPerSecond), so the slot after the dependent one does not see the moved value.
    private const string DepartedLateSql = """
        UPDATE rate_gate SET recent_starts = array_replace(recent_starts, @slot + @margin, @departed + @margin)
        WHERE id = 1 AND @departed > @slot AND (@slot + @margin) = ANY(recent_starts)
        RETURNING id
        """;

    private const string RefundSql = """
        UPDATE rate_gate SET day_call_count = day_call_count - 1
        WHERE id = 1 AND day = (@slot AT TIME ZONE 'UTC')::date AND day_call_count > 0
        """;

    private const string ReadSql = "SELECT blocked_until, day, day_call_count, COALESCE(@now, clock_timestamp()) FROM rate_gate WHERE id = 1";

    /// <summary>
    /// Takes the next slot for a call recorded as arriving up to <paramref name="margin"/> after it, unless it lies
    /// beyond <c>MaxGateWait</c> (or <paramref name="reserveAhead"/>): then the row is left as it was.
    /// </summary>
    /// <param name="margin">Latest arrival after the slot (0–10 s).</param>
    /// <param name="priority">The batch's lane (its daily limit, <see cref="GatePriority.DailyLimit"/>).</param>
    /// <param name="reserveAhead">How far ahead of now this caller may take a slot; null: up to MaxGateWait.</param>
    /// <param name="cancellationToken">Cancels the statement.</param>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    public async Task<RateGateTake> TakeSlotAsync(TimeSpan margin, ProspectPriority priority, TimeSpan? reserveAhead, CancellationToken cancellationToken)
    {
        var o = options.Value;
        await using var command = dataSource.CreateCommand(TakeSlotSql);
        command.Parameters.Add(clock.NowParameter());
        command.Parameters.Add(new NpgsqlParameter("max_wait", NpgsqlDbType.Interval) { Value = o.MaxGateWait });
        command.Parameters.Add(new NpgsqlParameter("per_second", NpgsqlDbType.Integer) { Value = o.RequestsPerSecond });
        command.Parameters.Add(new NpgsqlParameter("max_rate", NpgsqlDbType.Double) { Value = (double)o.RequestsPerSecond });
        command.Parameters.Add(new NpgsqlParameter("increase_step", NpgsqlDbType.Double) { Value = o.RateIncreaseStep });
        command.Parameters.Add(new NpgsqlParameter("increase_interval", NpgsqlDbType.Interval) { Value = o.RateIncreaseInterval });
        command.Parameters.Add(new NpgsqlParameter("daily_limit", NpgsqlDbType.Integer) { Value = GatePriority.DailyLimit(priority, o) });
        command.Parameters.Add(new NpgsqlParameter("reserve_ahead", NpgsqlDbType.Interval) { Value = reserveAhead is { } ahead ? ahead : DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("margin", NpgsqlDbType.Interval) { Value = margin });
        command.Parameters.Add(new NpgsqlParameter("margin_seconds", NpgsqlDbType.Double) { Value = margin.TotalSeconds });
        var (reader, sentAt, roundTrip) = await ReadRowAsync(command, cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader;
        var now = reader.GetFieldValue<DateTimeOffset>(4);
        clock.Observe(sentAt, roundTrip, now);
        return new RateGateTake(
            reader.GetFieldValue<DateTimeOffset>(0),
            reader.GetBoolean(1),
            reader.IsDBNull(2) ? null : reader.GetFieldValue<DateTimeOffset>(2),
            reader.IsDBNull(3) ? null : reader.GetString(3),
            now,
            reader.GetDouble(5),
            reader.GetString(6));
    }

    /// <summary>Blocks the gate until <paramref name="until"/> (gate clock; never shortens a block) and cuts the allowed
    /// rate by <c>RateDecreaseFactor</c> (once per 2 s, at least a tenth of RequestsPerSecond).</summary>
    /// <param name="until">Instant on the gate's clock.</param>
    /// <param name="reason">Stored in <c>blocked_reason</c> (truncated to 512 characters).</param>
    /// <param name="cancellationToken">Cancels the statement.</param>
    /// <returns>The allowed rate after the cut (calls/s), or null when the row is missing.</returns>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task<double?> BlockAsync(DateTimeOffset until, string reason, CancellationToken cancellationToken)
    {
        var o = options.Value;
        await using var command = dataSource.CreateCommand(BlockSql);
        command.Parameters.Add(new NpgsqlParameter("until", NpgsqlDbType.TimestampTz) { Value = until.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter("reason", NpgsqlDbType.Varchar) { Value = UserText.Truncate(reason, 512) });
        command.Parameters.Add(clock.NowParameter());
        command.Parameters.Add(new NpgsqlParameter("hold", NpgsqlDbType.Interval) { Value = DecreaseHold });
        command.Parameters.Add(new NpgsqlParameter("max_rate", NpgsqlDbType.Double) { Value = (double)o.RequestsPerSecond });
        command.Parameters.Add(new NpgsqlParameter("min_rate", NpgsqlDbType.Double) { Value = o.RequestsPerSecond * 0.1 });
        command.Parameters.Add(new NpgsqlParameter("factor", NpgsqlDbType.Double) { Value = o.RateDecreaseFactor });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is double rate ? rate : null;
    }

    /// <summary>Moves a taken slot to the gate's now + <paramref name="lead"/> (never earlier than it was), with its
    /// recorded latest arrival, when no later slot depends on it yet, the move stays within
    /// <paramref name="maxMove"/> of the slot first taken, no 429 block is in force then and the UTC day stays the same
    /// (see <c>ReclaimSql</c>).</summary>
    /// <param name="slot">The slot as it stands (gate clock).</param>
    /// <param name="firstSlot">The slot as first taken (gate clock).</param>
    /// <param name="margin">The margin it was taken with.</param>
    /// <param name="lead">How far ahead of now the new slot lies (the caller's way back from the database).</param>
    /// <param name="maxMove">Most the slot may end up after <paramref name="firstSlot"/>.</param>
    /// <param name="cancellationToken">Cancels the statement.</param>
    /// <returns>The new slot (gate clock), or null when the slot cannot move.</returns>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task<DateTimeOffset?> ReclaimAsync(
        DateTimeOffset slot, DateTimeOffset firstSlot, TimeSpan margin, TimeSpan lead, TimeSpan maxMove, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ReclaimSql);
        command.Parameters.Add(clock.NowParameter());
        command.Parameters.Add(new NpgsqlParameter("slot", NpgsqlDbType.TimestampTz) { Value = slot.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter("first_slot", NpgsqlDbType.TimestampTz) { Value = firstSlot.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter("margin", NpgsqlDbType.Interval) { Value = margin });
        command.Parameters.Add(new NpgsqlParameter("lead", NpgsqlDbType.Interval) { Value = lead });
        command.Parameters.Add(new NpgsqlParameter("max_move", NpgsqlDbType.Interval) { Value = maxMove });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is DateTime at
            ? new DateTimeOffset(DateTime.SpecifyKind(at, DateTimeKind.Utc))
            : null;
    }

    /// <summary>Moves the recorded latest arrival of <paramref name="slot"/> (gate clock, taken with
    /// <paramref name="margin"/>) to <paramref name="departed"/> + <paramref name="margin"/>, while the slot that depends
    /// on it is not taken yet (see <c>DepartedLateSql</c>).</summary>
    /// <returns>Whether the entry moved (false: a later slot already depends on it, or it was not found).</returns>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task<bool> DepartedLateAsync(DateTimeOffset slot, TimeSpan margin, DateTimeOffset departed, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(DepartedLateSql);
        command.Parameters.Add(new NpgsqlParameter("slot", NpgsqlDbType.TimestampTz) { Value = slot.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter("margin", NpgsqlDbType.Interval) { Value = margin });
        command.Parameters.Add(new NpgsqlParameter("departed", NpgsqlDbType.TimestampTz) { Value = departed.ToUniversalTime() });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null;
    }

    /// <summary>Gives back the daily count of <paramref name="slot"/> (gate clock), when it is still that slot's UTC day.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task RefundAsync(DateTimeOffset slot, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(RefundSql);
        command.Parameters.Add(new NpgsqlParameter("slot", NpgsqlDbType.TimestampTz) { Value = slot.ToUniversalTime() });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads the 429 block (gate clock) and the daily count, and times the read for the block-check lead.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    public async Task<(DateTimeOffset? BlockedUntil, DateOnly Day, int DayCallCount)> ReadAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ReadSql);
        command.Parameters.Add(clock.NowParameter());
        var (reader, sentAt, roundTrip) = await ReadRowAsync(command, cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader;
        clock.Observe(sentAt, roundTrip, reader.GetFieldValue<DateTimeOffset>(3));
        clock.ObserveRead(roundTrip);
        return (reader.IsDBNull(0) ? null : reader.GetFieldValue<DateTimeOffset>(0), reader.GetFieldValue<DateOnly>(1), reader.GetInt32(2));
    }

    /// <summary>
    /// Runs <paramref name="command"/> (one row of <c>rate_gate</c>) and times its round trip from just before it is sent
    /// to its row read, for the clock offset. The caller disposes the reader, positioned on the row.
    /// </summary>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    private async Task<(NpgsqlDataReader Reader, DateTimeOffset SentAt, TimeSpan RoundTrip)> ReadRowAsync(
        NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var sentAt = time.GetUtcNow();
        var started = time.GetTimestamp();
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            await reader.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException("rate_gate has no row with id 1: apply the migrations (the InitialSchema migration seeds it).");
        }

        return (reader, sentAt, time.GetElapsedTime(started));
    }
}

/// <summary>What one attempt to take a slot found (instants on the gate's clock).</summary>
/// <param name="At">The slot; when not taken, the earliest instant the gate would give one.</param>
/// <param name="Taken">Whether the slot is this caller's (false: beyond MaxGateWait or the caller's reserve-ahead).</param>
/// <param name="BlockedUntil">The 429 block in force, or null.</param>
/// <param name="BlockedReason">Its reason.</param>
/// <param name="Now">The gate's clock when the row was locked.</param>
/// <param name="Rate">The allowed rate after this take (calls/s).</param>
/// <param name="RateReason">Its reason code (<see cref="PostgresRateGate.RateConfigured"/> and the others).</param>
internal sealed record RateGateTake(DateTimeOffset At, bool Taken, DateTimeOffset? BlockedUntil, string? BlockedReason, DateTimeOffset Now, double Rate, string RateReason);
