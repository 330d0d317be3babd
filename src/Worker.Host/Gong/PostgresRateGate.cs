using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Host.Operations;

namespace Worker.Host.Gong;

/// <summary>
/// The rate gate shared by every replica: one row (<c>rate_gate</c>, id 1) that each caller updates with a single
/// atomic <c>UPDATE … RETURNING</c> to take the next call slot, then waits for it on the injected
/// <see cref="TimeProvider"/>. Times come from that provider, never from the database clock, so tests can use a
/// fake clock.
/// </summary>
/// <remarks>
/// A slot <c>t</c> satisfies every rule at once:
/// <list type="bullet">
/// <item>spacing: <c>t ≥ previous slot + 1 s / RequestsPerSecond</c> (no bursts);</item>
/// <item>sliding window: <c>t ≥ the RequestsPerSecond-th most recent slot + 1 s + RateWindowMargin</c>, so any
/// RequestsPerSecond + 1 consecutive slots span more than one second and no one-second window holds more than
/// RequestsPerSecond starts; the margin absorbs a caller waking a little late;</item>
/// <item><c>t ≥ blocked_until</c> (a 429's Retry-After plus margin, however long);</item>
/// <item>daily budget: when <c>DailyCallLimit</c> calls are counted for the slot's UTC day, the slot moves to the
/// next UTC midnight.</item>
/// </list>
/// A caller that starts more than half the margin after its slot gives it up and takes a new one, so real starts
/// stay within RateWindowMargin / 2 of their slots. A slot further away than <c>MaxGateWait</c> is not taken (the row is left as it was) and the caller is told when
/// the gate opens, so a batch is never held for hours.
/// </remarks>
internal sealed class PostgresRateGate(NpgsqlDataSource dataSource, IOptions<GongOptions> options, TimeProvider time)
{
    // The FOR UPDATE in the first CTE makes concurrent callers queue on the row and read its latest committed
    // version (READ COMMITTED re-reads a row it waited for), so every computed value is based on the state the
    // previous caller left; the outer UPDATE then writes it. One statement, one round trip.
    private const string TakeSlotSql = """
        WITH cur AS (
            SELECT next_slot_at, blocked_until, blocked_reason, day, day_call_count, recent_starts
            FROM rate_gate WHERE id = 1 FOR UPDATE),
        base AS (
            SELECT cur.*, GREATEST(
                @now,
                cur.next_slot_at,
                COALESCE(cur.blocked_until, @now),
                CASE WHEN cardinality(cur.recent_starts) >= @per_second
                     THEN cur.recent_starts[cardinality(cur.recent_starts) - @per_second + 1] + @window
                     ELSE @now END) AS candidate
            FROM cur),
        slot AS (
            SELECT base.*, CASE
                WHEN (base.candidate AT TIME ZONE 'UTC')::date = base.day AND base.day_call_count >= @daily_limit
                THEN ((base.day + 1)::timestamp AT TIME ZONE 'UTC')
                ELSE base.candidate END AS at
            FROM base),
        taken AS (
            UPDATE rate_gate g SET
                next_slot_at = slot.at + @spacing,
                day = (slot.at AT TIME ZONE 'UTC')::date,
                day_call_count = CASE WHEN (slot.at AT TIME ZONE 'UTC')::date = slot.day THEN slot.day_call_count + 1 ELSE 1 END,
                recent_starts = (slot.recent_starts || slot.at)[GREATEST(1, cardinality(slot.recent_starts) + 2 - @per_second):],
                updated_at = @now
            FROM slot
            WHERE g.id = 1 AND slot.at <= @deadline
            RETURNING g.id)
        SELECT slot.at, EXISTS (SELECT 1 FROM taken), slot.blocked_until, slot.blocked_reason FROM slot
        """;

    private const string BlockSql = """
        UPDATE rate_gate SET
            blocked_until = GREATEST(COALESCE(blocked_until, @until), @until),
            blocked_reason = CASE WHEN blocked_until IS NULL OR blocked_until <= @until THEN @reason ELSE blocked_reason END,
            updated_at = @now
        WHERE id = 1
        """;

    private const string RefundSql = """
        UPDATE rate_gate SET day_call_count = day_call_count - 1
        WHERE id = 1 AND day = (@slot AT TIME ZONE 'UTC')::date AND day_call_count > 0
        """;

    private const string ReadSql = "SELECT blocked_until, day, day_call_count FROM rate_gate WHERE id = 1";

    /// <summary>
    /// Takes the next slot and waits until it, unless it lies beyond <c>MaxGateWait</c>. After waiting, checks that
    /// no 429 blocked the gate meanwhile; if one did, takes a new slot after the block.
    /// </summary>
    /// <returns>The slot taken (and how long the caller waited), or the instant the gate opens when it is too far.</returns>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public async Task<GateSlot> WaitForSlotAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var waitStarted = time.GetTimestamp();
        while (true)
        {
            var now = time.GetUtcNow();
            var (slot, taken, blockedUntil, blockedReason) = await TakeSlotAsync(now, now + o.MaxGateWait, cancellationToken).ConfigureAwait(false);
            if (!taken)
            {
                return new GateSlot(false, slot, blockedUntil is { } b && b >= slot ? blockedReason : "daily call limit or queue of slots", time.GetElapsedTime(waitStarted), slot);
            }

            var delay = slot - time.GetUtcNow();
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
            }

            // A 429 seen by any replica while we waited moves the gate; a slot taken before it is void.
            // (Only the 429 block counts here: the daily count already includes this slot.)
            var (current, _, _) = await ReadAsync(cancellationToken).ConfigureAwait(false);
            if (current is { } blocked && blocked > slot)
            {
                continue;
            }

            // A caller that wakes (or hears back from Postgres) late would start closer to the next slots than the
            // window allows. Beyond half the margin it gives its slot up (keeping the window conservative, refunding
            // the daily count) and queues again.
            var late = time.GetUtcNow() - slot;
            if (late > o.RateWindowMargin / 2)
            {
                await RefundAsync(slot, cancellationToken).ConfigureAwait(false);
                continue;
            }

            return new GateSlot(true, slot, null, time.GetElapsedTime(waitStarted), slot + o.RateWindowMargin / 2);
        }
    }

    /// <summary>Blocks the gate for every replica until <paramref name="until"/> (never shortens an existing block).</summary>
    /// <param name="until">UTC instant (Retry-After plus margin).</param>
    /// <param name="reason">Stored in <c>blocked_reason</c> (max 512 characters).</param>
    /// <param name="cancellationToken">Cancels the update.</param>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task BlockAsync(DateTimeOffset until, string reason, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(BlockSql);
        command.Parameters.Add(new NpgsqlParameter("until", NpgsqlDbType.TimestampTz) { Value = until.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter("reason", NpgsqlDbType.Varchar) { Value = UserText.Truncate(reason, 512) });
        command.Parameters.Add(new NpgsqlParameter("now", NpgsqlDbType.TimestampTz) { Value = time.GetUtcNow() });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The UTC instant before which no call may start (a 429 block or a spent daily budget), or null.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    public async Task<DateTimeOffset?> GetBlockedUntilAsync(CancellationToken cancellationToken)
    {
        var (blocked, day, count) = await ReadAsync(cancellationToken).ConfigureAwait(false);
        var now = time.GetUtcNow();
        if (day == DateOnly.FromDateTime(now.UtcDateTime) && count >= options.Value.DailyCallLimit)
        {
            var midnight = new DateTimeOffset(day.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            blocked = blocked is { } b && b > midnight ? b : midnight;
        }

        return blocked is { } until && until > now ? until : null;
    }

    /// <summary>Gives back the daily count of a slot that was not used (the slot stays in the window: conservative).</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task RefundAsync(DateTimeOffset slot, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(RefundSql);
        command.Parameters.Add(new NpgsqlParameter("slot", NpgsqlDbType.TimestampTz) { Value = slot.ToUniversalTime() });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<(DateTimeOffset? BlockedUntil, DateOnly Day, int DayCallCount)> ReadAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ReadSql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            throw new InvalidOperationException("rate_gate has no row with id 1: apply the migrations (the InitialSchema migration seeds it).");
        }

        return (reader.IsDBNull(0) ? null : reader.GetFieldValue<DateTimeOffset>(0), reader.GetFieldValue<DateOnly>(1), reader.GetInt32(2));
    }

    private async Task<(DateTimeOffset Slot, bool Taken, DateTimeOffset? BlockedUntil, string? BlockedReason)> TakeSlotAsync(
        DateTimeOffset now, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        var o = options.Value;
        await using var command = dataSource.CreateCommand(TakeSlotSql);
        command.Parameters.Add(new NpgsqlParameter("now", NpgsqlDbType.TimestampTz) { Value = now.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter("deadline", NpgsqlDbType.TimestampTz) { Value = deadline.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter("per_second", NpgsqlDbType.Integer) { Value = o.RequestsPerSecond });
        command.Parameters.Add(new NpgsqlParameter("daily_limit", NpgsqlDbType.Integer) { Value = o.DailyCallLimit });
        command.Parameters.Add(new NpgsqlParameter("window", NpgsqlDbType.Interval) { Value = TimeSpan.FromSeconds(1) + o.RateWindowMargin });
        command.Parameters.Add(new NpgsqlParameter("spacing", NpgsqlDbType.Interval) { Value = TimeSpan.FromTicks(TimeSpan.TicksPerSecond / o.RequestsPerSecond) });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            throw new InvalidOperationException("rate_gate has no row with id 1: apply the migrations (the InitialSchema migration seeds it).");
        }

        return (
            reader.GetFieldValue<DateTimeOffset>(0),
            reader.GetBoolean(1),
            reader.IsDBNull(2) ? null : reader.GetFieldValue<DateTimeOffset>(2),
            reader.IsDBNull(3) ? null : reader.GetString(3));
    }
}

/// <summary>The result of asking the rate gate for a slot.</summary>
/// <param name="Taken">True when the slot is ours and its time has come; false when it lies beyond <c>MaxGateWait</c>.</param>
/// <param name="At">The slot (UTC); when not taken, the earliest instant the gate would give one.</param>
/// <param name="Reason">When not taken: why (the block reason).</param>
/// <param name="Waited">Time spent in the gate.</param>
/// <param name="StartNoLaterThan">Latest start that keeps the window guarantee (slot + RateWindowMargin / 2).</param>
internal sealed record GateSlot(bool Taken, DateTimeOffset At, string? Reason, TimeSpan Waited, DateTimeOffset StartNoLaterThan);
