using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Host.Operations;
using Worker.Persistence.Entities;

namespace Worker.Host.Gong;

/// <summary>
/// The rate gate shared by every replica: one row (<c>rate_gate</c>, id 1) that each caller updates with a single
/// atomic <c>UPDATE … RETURNING</c> to take the next call slot, then waits for it. Slots are on one clock for every
/// replica: Postgres' <c>clock_timestamp()</c> (<c>Gong:RateGateClock=Database</c>, the default), converted to this
/// process's <see cref="TimeProvider"/> through an offset measured on every round trip (the sample with the shortest
/// round trip of the last 256 wins; before its first slot a process reads the clock 8 times), so replicas whose clocks
/// differ still space their calls, and a replica's own estimate does not jump between two of its calls by more than the
/// best round trips differ; <c>Local</c> uses the
/// TimeProvider itself (tests on a fake clock).
/// </summary>
/// <remarks>
/// Gong counts calls when they arrive. Each call is recorded with its latest possible arrival, slot + margin (the
/// caller's <see cref="RateGatePacing"/> margin: base margin plus learned jitter), and a slot <c>t</c> satisfies every
/// rule at once:
/// <list type="bullet">
/// <item>spacing: <c>t ≥ previous slot + 1 s / allowed rate</c> (no bursts);</item>
/// <item>sliding window: <c>t ≥ latest arrival of the RequestsPerSecond-th most recent call + 1 s</c>, so any
/// RequestsPerSecond + 1 calls span at least one second at Gong's door (the first arrives no later than its slot plus
/// its margin, the last no earlier than its slot);</item>
/// <item><c>t ≥ blocked_until</c> (a 429's Retry-After plus margin, however long);</item>
/// <item>daily budget: when <c>DailyCallLimit</c> calls are counted for the slot's UTC day, the slot moves to the
/// next UTC midnight.</item>
/// </list>
/// The allowed rate is one controller for the whole gate (AIMD): every 429 (the gate had spaced every arrival it could
/// see, so another client of the company spends part of the quota) multiplies it by <c>RateDecreaseFactor</c> (once
/// per 2 s, however many calls were in flight); each <c>RateIncreaseInterval</c> without one adds
/// <c>RateIncreaseStep</c>, up to <c>RequestsPerSecond</c>. A caller that starts more than half the base margin after
/// its slot gives it up and takes a new one. A slot further away than <c>MaxGateWait</c> is not taken (the row is left
/// as it was) and the caller is told when the gate opens, so a batch is never held for hours.
/// </remarks>
internal sealed class PostgresRateGate
{
    /// <summary>Reason codes of the allowed rate (bounded: metric attribute values).</summary>
    public const string RateConfigured = "configured";

    /// <summary>A 429 cut the allowed rate.</summary>
    public const string RateThrottled = "throttled";

    /// <summary>The allowed rate climbs back after clean periods.</summary>
    public const string RateClimbing = "climbing";

    private static readonly TimeSpan DecreaseHold = TimeSpan.FromSeconds(2);

    /// <summary>A slot is checked against a 429 block at least this long before it: short enough that a 429 answered
    /// just before the slot is still seen. The lead grows with the slowest of the last 16 reads (plus
    /// <see cref="BlockCheckSlack"/>, at most <see cref="MaximumBlockCheckLead"/>), so the read's round trip stays out of
    /// the instant the call starts: on a busy machine a read that ends after the slot made the caller late, and a late
    /// caller gives its slot up.</summary>
    private static readonly TimeSpan MinimumBlockCheckLead = TimeSpan.FromMilliseconds(8);

    private static readonly TimeSpan MaximumBlockCheckLead = TimeSpan.FromMilliseconds(40);

    private static readonly TimeSpan BlockCheckSlack = TimeSpan.FromMilliseconds(3);

    /// <summary>The last part of the wait for a slot is spent on the waiting thread (sleeps of 1 ms, then spinning)
    /// instead of a timer: on a busy machine a timer's continuation can run tens of ms late, and a caller more than half
    /// the base margin late loses its slot.</summary>
    private static readonly TimeSpan PreciseLead = TimeSpan.FromMilliseconds(50);

    /// <summary>Longest real time spent in the precise wait before falling back to a timer (a fake clock does not move
    /// by itself).</summary>
    private static readonly TimeSpan PreciseWaitLimit = TimeSpan.FromMilliseconds(150);

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
                rate_reason = CASE WHEN slot.rate_changes THEN (CASE WHEN slot.rate IS NULL THEN '{RateConfigured}' ELSE '{RateClimbing}' END) ELSE slot.rate_reason END,
                rate_changed_at = CASE WHEN slot.rate_changes THEN slot.now ELSE slot.rate_changed_at END,
                margin_seconds = @margin_seconds,
                updated_at = slot.now
            FROM slot
            WHERE g.id = 1 AND slot.at <= slot.now + LEAST(@max_wait, COALESCE(@reserve_ahead, @max_wait))
            RETURNING g.id)
        SELECT slot.at, EXISTS (SELECT 1 FROM taken), slot.blocked_until, slot.blocked_reason, slot.now,
               COALESCE(slot.rate, @max_rate), COALESCE(CASE WHEN slot.rate_changes THEN (CASE WHEN slot.rate IS NULL THEN '{RateConfigured}' ELSE '{RateClimbing}' END) ELSE slot.rate_reason END, '{RateConfigured}')
        FROM slot
        """;

    // A 429 blocks the gate and, once per DecreaseHold, cuts the allowed rate (AIMD).
    private const string BlockSql = $"""
        WITH cur AS (SELECT *, COALESCE(@now, clock_timestamp()) AS now FROM rate_gate WHERE id = 1 FOR UPDATE)
        UPDATE rate_gate g SET
            blocked_until = GREATEST(COALESCE(cur.blocked_until, @until), @until),
            blocked_reason = CASE WHEN cur.blocked_until IS NULL OR cur.blocked_until <= @until THEN @reason ELSE cur.blocked_reason END,
            allowed_rate = CASE WHEN cur.rate_reason = '{RateThrottled}' AND cur.rate_changed_at > cur.now - @hold THEN cur.allowed_rate
                                ELSE GREATEST(@min_rate, LEAST(COALESCE(cur.allowed_rate, @max_rate), @max_rate) * @factor) END,
            rate_changed_at = CASE WHEN cur.rate_reason = '{RateThrottled}' AND cur.rate_changed_at > cur.now - @hold THEN cur.rate_changed_at ELSE cur.now END,
            rate_reason = '{RateThrottled}',
            updated_at = cur.now
        FROM cur
        WHERE g.id = 1
        RETURNING g.allowed_rate
        """;

    private const string RefundSql = """
        UPDATE rate_gate SET day_call_count = day_call_count - 1
        WHERE id = 1 AND day = (@slot AT TIME ZONE 'UTC')::date AND day_call_count > 0
        """;

    private const string ReadSql = "SELECT blocked_until, day, day_call_count, COALESCE(@now, clock_timestamp()) FROM rate_gate WHERE id = 1";

    private readonly NpgsqlDataSource dataSource;
    private readonly IOptions<GongOptions> options;
    private readonly TimeProvider time;
    private readonly Lock sync = new();
    /// <summary>Clock samples kept (two per call: about a minute at 3 calls/s). A short window can let the offset jump
    /// by tens of ms on a busy machine whenever its best sample leaves it, and a call slotted before the jump and one
    /// after are that much closer at Gong's door (suspected cause of a self-caused 429 at a process's fifth call).</summary>
    private const int ClockWindow = 256;

    /// <summary>Clock reads made before a process's first slot, so its first calls are not converted with the offset
    /// of one slow round trip.</summary>
    private const int ClockWarmUpReads = 8;

    private readonly Queue<(TimeSpan RoundTrip, TimeSpan Offset)> clockSamples = new();
    private readonly Queue<TimeSpan> readRoundTrips = new();
    private TimeSpan clockOffset;
    private double allowedRate;
    private string rateReason = RateConfigured;
    private double marginSeconds;
    private long slotsGivenUp;

    /// <summary>Creates the gate and its gauges <c>flow_assignment.rate_gate.allowed_rate</c> (by <c>reason</c>) and
    /// <c>flow_assignment.rate_gate.margin</c>, as this replica last saw them.</summary>
    public PostgresRateGate(NpgsqlDataSource dataSource, IOptions<GongOptions> options, TimeProvider time, IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        this.dataSource = dataSource;
        this.options = options;
        this.time = time;
        allowedRate = options.Value.RequestsPerSecond;
        marginSeconds = options.Value.RateWindowMargin.TotalSeconds;
        var meter = meterFactory.Create(WorkerMetrics.MeterName);
        meter.CreateObservableGauge("flow_assignment.rate_gate.allowed_rate", ObserveRate, "{call}/s",
            "Calls per second the shared gate allows now (RequestsPerSecond unless a 429 cut it), by reason (configured, throttled, climbing); as this replica last saw it.");
        meter.CreateObservableCounter("flow_assignment.rate_gate.slots_given_up", () => Interlocked.Read(ref slotsGivenUp), "{slot}",
            "Slots this replica gave up because it woke more than half of RateWindowMargin after them (a busy machine); each costs one slot of throughput, never a 429.");
        meter.CreateObservableGauge("flow_assignment.rate_gate.margin", () => Volatile.Read(ref marginSeconds), "s",
            "Window margin this replica's latest call was recorded with: RateWindowMargin plus the learned network jitter.");
    }

    /// <summary>The allowed rate (calls/s) and its reason code as this replica last saw them.</summary>
    public (double Rate, string Reason) AllowedRate
    {
        get
        {
            lock (sync)
            {
                return (allowedRate, rateReason);
            }
        }
    }

    /// <summary>Slots this replica gave up because it woke too late for them.</summary>
    public long SlotsGivenUp => Interlocked.Read(ref slotsGivenUp);

    /// <summary>Takes the next slot with the base margin (<c>RateWindowMargin</c>) and waits until it.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public Task<GateSlot> WaitForSlotAsync(CancellationToken cancellationToken) => WaitForSlotAsync(options.Value.RateWindowMargin, cancellationToken);

    /// <summary>
    /// Takes the next slot for a normal-priority call, recording the call as arriving up to <paramref name="margin"/>
    /// after it, and waits until it, unless it lies beyond <c>MaxGateWait</c>. Shortly before the slot, checks that no
    /// 429 blocked the gate meanwhile; if one did, takes a new slot after the block.
    /// </summary>
    /// <param name="margin">Latest arrival after the slot (base margin plus jitter allowance; 0–10 s).</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The slot taken (on this process's clock, and how long the caller waited), or the instant the gate opens
    /// when it is too far.</returns>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public Task<GateSlot> WaitForSlotAsync(TimeSpan margin, CancellationToken cancellationToken) =>
        WaitForSlotAsync(margin, ProspectPriority.Normal, cancellationToken);

    /// <summary>As <see cref="WaitForSlotAsync(TimeSpan, CancellationToken)"/>, for a batch of lane
    /// <paramref name="priority"/>: a normal or bulk caller takes a slot only shortly before it (waiting meanwhile),
    /// so a high caller takes the next slot ahead of them; normal and bulk count against the daily limit less
    /// <c>Gong:DailyReserveForHigh</c> (<see cref="GatePriority"/>).</summary>
    /// <param name="margin">Latest arrival after the slot (base margin plus jitter allowance; 0–10 s).</param>
    /// <param name="priority">The batch's lane.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The slot taken, or the instant the gate opens when it is beyond <c>MaxGateWait</c>.</returns>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public async Task<GateSlot> WaitForSlotAsync(TimeSpan margin, ProspectPriority priority, CancellationToken cancellationToken)
    {
        var o = options.Value;
        var waitStarted = time.GetTimestamp();
        var lateTolerance = o.RateWindowMargin / 2;
        var reserveAhead = GatePriority.ReserveAhead(priority, o.RequestsPerSecond);
        await WarmClockAsync(cancellationToken).ConfigureAwait(false);
        while (true)
        {
            var take = await TakeSlotAsync(margin, priority, reserveAhead, cancellationToken).ConfigureAwait(false);
            var slot = ToLocal(take.At);
            if (!take.Taken && reserveAhead is { } ahead && take.At - take.Now <= o.MaxGateWait)
            {
                // Within MaxGateWait but further than this lane may reserve: ask again when it may.
                await DelayUntilAsync(slot - ahead, cancellationToken).ConfigureAwait(false);
                continue;
            }

            if (!take.Taken)
            {
                var reason = take.BlockedUntil is { } b && b >= take.At ? take.BlockedReason : "daily call limit or queue of slots";
                return new GateSlot(false, slot, reason, time.GetElapsedTime(waitStarted), slot, take.At);
            }

            await DelayUntilAsync(slot - PreciseLead, cancellationToken).ConfigureAwait(false);
            await PreciseDelayUntilAsync(slot - BlockCheckLead(), cancellationToken).ConfigureAwait(false);

            // A 429 seen by any replica while we waited moves the gate; a slot taken before it is void.
            // (Only the 429 block counts here: the daily count already includes this slot.)
            var (current, _, _) = await ReadAsync(cancellationToken).ConfigureAwait(false);
            if (current is { } blocked && blocked > take.At)
            {
                continue;
            }

            await PreciseDelayUntilAsync(slot, cancellationToken).ConfigureAwait(false);

            // A caller that wakes late would arrive closer to the next slots than the window allows. Beyond half the
            // base margin it gives its slot up (keeping the window conservative, refunding the daily count) and queues again.
            if (time.GetUtcNow() - slot > lateTolerance)
            {
                Interlocked.Increment(ref slotsGivenUp);
                await RefundAsync(slot, cancellationToken).ConfigureAwait(false);
                continue;
            }

            return new GateSlot(true, slot, null, time.GetElapsedTime(waitStarted), slot + lateTolerance, take.At);
        }
    }

    /// <summary>Blocks the gate for every replica until <paramref name="until"/> (never shortens an existing block) and
    /// cuts the allowed rate by <c>RateDecreaseFactor</c> (at most once per 2 s).</summary>
    /// <param name="until">Instant on this process's clock (Retry-After plus margin).</param>
    /// <param name="reason">Stored in <c>blocked_reason</c> (max 512 characters).</param>
    /// <param name="cancellationToken">Cancels the update.</param>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task BlockAsync(DateTimeOffset until, string reason, CancellationToken cancellationToken)
    {
        var o = options.Value;
        await using var command = dataSource.CreateCommand(BlockSql);
        command.Parameters.Add(new NpgsqlParameter("until", NpgsqlDbType.TimestampTz) { Value = ToGate(until).ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter("reason", NpgsqlDbType.Varchar) { Value = UserText.Truncate(reason, 512) });
        command.Parameters.Add(NowParameter());
        command.Parameters.Add(new NpgsqlParameter("hold", NpgsqlDbType.Interval) { Value = DecreaseHold });
        command.Parameters.Add(new NpgsqlParameter("max_rate", NpgsqlDbType.Double) { Value = (double)o.RequestsPerSecond });
        command.Parameters.Add(new NpgsqlParameter("min_rate", NpgsqlDbType.Double) { Value = o.RequestsPerSecond * 0.1 });
        command.Parameters.Add(new NpgsqlParameter("factor", NpgsqlDbType.Double) { Value = o.RateDecreaseFactor });
        var rate = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        if (rate is double r)
        {
            lock (sync)
            {
                allowedRate = r;
                rateReason = RateThrottled;
            }
        }
    }

    /// <summary>The instant (this process's clock) before which no call may start (a 429 block or a spent daily
    /// budget), or null.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    public async Task<DateTimeOffset?> GetBlockedUntilAsync(CancellationToken cancellationToken)
    {
        var (blocked, day, count) = await ReadAsync(cancellationToken).ConfigureAwait(false);
        var now = ToGate(time.GetUtcNow());
        if (day == DateOnly.FromDateTime(now.UtcDateTime) && count >= options.Value.DailyCallLimit)
        {
            var midnight = new DateTimeOffset(day.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            blocked = blocked is { } b && b > midnight ? b : midnight;
        }

        return blocked is { } until && until > now ? ToLocal(until) : null;
    }

    /// <summary>Gives back the daily count of a slot (this process's clock) that was not used (the slot stays in the
    /// window: conservative).</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task RefundAsync(DateTimeOffset slot, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(RefundSql);
        command.Parameters.Add(new NpgsqlParameter("slot", NpgsqlDbType.TimestampTz) { Value = ToGate(slot).ToUniversalTime() });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Before this process's first slot: a few clock reads, so the offset comes from a fast round trip.</summary>
    private async Task WarmClockAsync(CancellationToken cancellationToken)
    {
        if (options.Value.RateGateClock == RateGateClock.Local)
        {
            return;
        }

        for (var i = 0; i < ClockWarmUpReads; i++)
        {
            lock (sync)
            {
                if (clockSamples.Count >= ClockWarmUpReads)
                {
                    return;
                }
            }

            await ReadAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>How long before a slot the 429 block is read: the slowest of the last 16 reads plus slack, 8–40 ms.</summary>
    private TimeSpan BlockCheckLead()
    {
        lock (sync)
        {
            var slowest = readRoundTrips.Count > 0 ? readRoundTrips.Max() : TimeSpan.Zero;
            var lead = slowest + BlockCheckSlack;
            return lead < MinimumBlockCheckLead ? MinimumBlockCheckLead : lead > MaximumBlockCheckLead ? MaximumBlockCheckLead : lead;
        }
    }

    private IEnumerable<Measurement<double>> ObserveRate()
    {
        var (rate, reason) = AllowedRate;
        yield return new Measurement<double>(rate, new KeyValuePair<string, object?>("reason", reason));
    }

    private DateTimeOffset ToLocal(DateTimeOffset gate)
    {
        lock (sync)
        {
            return gate - clockOffset;
        }
    }

    private DateTimeOffset ToGate(DateTimeOffset local)
    {
        lock (sync)
        {
            return local + clockOffset;
        }
    }

    private NpgsqlParameter NowParameter() => new("now", NpgsqlDbType.TimestampTz)
    {
        Value = options.Value.RateGateClock == RateGateClock.Local ? time.GetUtcNow().ToUniversalTime() : DBNull.Value,
    };

    /// <summary>Keeps the gate-minus-local offset of the round trip with the shortest time among the last 256
    /// (NTP-style: its midpoint is the best estimate of when the database read its clock).</summary>
    private void ObserveClock(DateTimeOffset sentAt, TimeSpan roundTrip, DateTimeOffset gateNow)
    {
        if (options.Value.RateGateClock == RateGateClock.Local)
        {
            return;
        }

        lock (sync)
        {
            clockSamples.Enqueue((roundTrip, gateNow - (sentAt + (roundTrip / 2))));
            while (clockSamples.Count > ClockWindow)
            {
                clockSamples.Dequeue();
            }

            clockOffset = clockSamples.MinBy(s => s.RoundTrip).Offset;
        }
    }

    private async Task DelayUntilAsync(DateTimeOffset instant, CancellationToken cancellationToken)
    {
        var delay = instant - time.GetUtcNow();
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task PreciseDelayUntilAsync(DateTimeOffset instant, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        while (time.GetUtcNow() < instant)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (System.Diagnostics.Stopwatch.GetElapsedTime(started) > PreciseWaitLimit)
            {
                await DelayUntilAsync(instant, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (instant - time.GetUtcNow() > TimeSpan.FromMilliseconds(4))
            {
                Thread.Sleep(1);
            }
            else if (!Thread.Yield())
            {
                Thread.SpinWait(64);
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="command"/> (one row of <c>rate_gate</c>) and times its round trip from just before it is sent
    /// to its row read, for the clock offset. The caller disposes the reader, positioned on the row.
    /// </summary>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    private async Task<(NpgsqlDataReader Reader, DateTimeOffset SentAt, TimeSpan RoundTrip)> ReadGateRowAsync(
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

    private async Task<(DateTimeOffset? BlockedUntil, DateOnly Day, int DayCallCount)> ReadAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ReadSql);
        command.Parameters.Add(NowParameter());
        var (reader, sentAt, roundTrip) = await ReadGateRowAsync(command, cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader;
        ObserveClock(sentAt, roundTrip, reader.GetFieldValue<DateTimeOffset>(3));
        lock (sync)
        {
            readRoundTrips.Enqueue(roundTrip);
            while (readRoundTrips.Count > 16)
            {
                readRoundTrips.Dequeue();
            }
        }

        return (reader.IsDBNull(0) ? null : reader.GetFieldValue<DateTimeOffset>(0), reader.GetFieldValue<DateOnly>(1), reader.GetInt32(2));
    }

    private async Task<TakeResult> TakeSlotAsync(TimeSpan margin, ProspectPriority priority, TimeSpan? reserveAhead, CancellationToken cancellationToken)
    {
        var o = options.Value;
        await using var command = dataSource.CreateCommand(TakeSlotSql);
        command.Parameters.Add(NowParameter());
        command.Parameters.Add(new NpgsqlParameter("max_wait", NpgsqlDbType.Interval) { Value = o.MaxGateWait });
        command.Parameters.Add(new NpgsqlParameter("per_second", NpgsqlDbType.Integer) { Value = o.RequestsPerSecond });
        command.Parameters.Add(new NpgsqlParameter("max_rate", NpgsqlDbType.Double) { Value = (double)o.RequestsPerSecond });
        command.Parameters.Add(new NpgsqlParameter("increase_step", NpgsqlDbType.Double) { Value = o.RateIncreaseStep });
        command.Parameters.Add(new NpgsqlParameter("increase_interval", NpgsqlDbType.Interval) { Value = o.RateIncreaseInterval });
        command.Parameters.Add(new NpgsqlParameter("daily_limit", NpgsqlDbType.Integer) { Value = GatePriority.DailyLimit(priority, o) });
        command.Parameters.Add(new NpgsqlParameter("reserve_ahead", NpgsqlDbType.Interval) { Value = reserveAhead is { } ahead ? ahead : DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("margin", NpgsqlDbType.Interval) { Value = margin });
        command.Parameters.Add(new NpgsqlParameter("margin_seconds", NpgsqlDbType.Double) { Value = margin.TotalSeconds });
        var (reader, sentAt, roundTrip) = await ReadGateRowAsync(command, cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader;
        var result = new TakeResult(
            reader.GetFieldValue<DateTimeOffset>(0),
            reader.GetBoolean(1),
            reader.IsDBNull(2) ? null : reader.GetFieldValue<DateTimeOffset>(2),
            reader.IsDBNull(3) ? null : reader.GetString(3),
            reader.GetFieldValue<DateTimeOffset>(4));
        ObserveClock(sentAt, roundTrip, reader.GetFieldValue<DateTimeOffset>(4));
        lock (sync)
        {
            allowedRate = reader.GetDouble(5);
            rateReason = reader.GetString(6);
        }

        if (result.Taken)
        {
            Volatile.Write(ref marginSeconds, margin.TotalSeconds);
        }

        return result;
    }

    private sealed record TakeResult(DateTimeOffset At, bool Taken, DateTimeOffset? BlockedUntil, string? BlockedReason, DateTimeOffset Now);
}

/// <summary>The result of asking the rate gate for a slot.</summary>
/// <param name="Taken">True when the slot is ours and its time has come; false when it lies beyond <c>MaxGateWait</c>.</param>
/// <param name="At">The slot (UTC, on this process's clock); when not taken, the earliest instant the gate would give one.</param>
/// <param name="Reason">When not taken: why (the block reason).</param>
/// <param name="Waited">Time spent in the gate.</param>
/// <param name="StartNoLaterThan">Latest start that keeps the window guarantee (slot + RateWindowMargin / 2, this process's clock).</param>
/// <param name="ScheduledAt">The slot on the gate's own clock (the database's by default), as stored in the schedule.</param>
internal sealed record GateSlot(bool Taken, DateTimeOffset At, string? Reason, TimeSpan Waited, DateTimeOffset StartNoLaterThan, DateTimeOffset ScheduledAt);
