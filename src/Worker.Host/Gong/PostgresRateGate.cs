using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Persistence.Entities;

namespace Worker.Host.Gong;

/// <summary>
/// The rate gate shared by every replica: one row (<c>rate_gate</c>, id 1) that each caller updates with a single
/// atomic <c>UPDATE … RETURNING</c> to take the next call slot (<see cref="RateGateRow"/>), then waits for it
/// (<see cref="RateGateWaits"/>). Slots are on one clock for every replica: Postgres' <c>clock_timestamp()</c>
/// (<c>Gong:RateGateClock=Database</c>, the default), converted to this process's <see cref="TimeProvider"/> through
/// the offset <see cref="RateGateClockOffset"/> measures on every round trip; <c>Local</c> uses the TimeProvider itself
/// (tests on a fake clock).
/// </summary>
/// <remarks>
/// Gong counts calls when they arrive. Each call is recorded with its latest possible arrival, slot + margin (the
/// caller's <see cref="RateGatePacing"/> margin: base margin plus learned jitter), and a slot <c>t</c> satisfies every
/// rule at once:
/// <list type="bullet">
/// <item>spacing: <c>t ≥ previous slot + 1 s / allowed rate</c> (no bursts);</item>
/// <item>sliding window: <c>t ≥ latest arrival of the RequestsPerSecond-th most recent call + 1 s</c> (a late
/// departure moves its call's recorded arrival, <see cref="DepartedAsync"/>), so any
/// RequestsPerSecond + 1 calls span at least one second at Gong's door (the first arrives no later than its slot plus
/// its margin, the last no earlier than its slot);</item>
/// <item><c>t ≥ blocked_until</c> (a 429's Retry-After plus margin, however long);</item>
/// <item>daily budget: when <c>DailyCallLimit</c> calls are counted for the slot's UTC day, the slot moves to the
/// next UTC midnight.</item>
/// </list>
/// The allowed rate is one controller for the whole gate (AIMD): every 429 (the gate had spaced every arrival it could
/// see, so another client of the company spends part of the quota) multiplies it by <c>RateDecreaseFactor</c> (once
/// per 2 s, however many calls were in flight); each <c>RateIncreaseInterval</c> without one adds
/// <c>RateIncreaseStep</c>, up to <c>RequestsPerSecond</c>. A caller that starts later than its slot allows (half the base margin; more
/// while its process is young, <see cref="GateMargin.LateStart"/>) after its slot moves it shortly ahead while no later slot depends on it (<see cref="ReclaimAsync"/>: at most half a
/// spacing after the slot first taken), else gives it up and takes a new one. A slot further away than <c>MaxGateWait</c> is not taken (the row is left
/// as it was) and the caller is told when the gate opens, so a batch is never held for hours.
/// </remarks>
internal sealed partial class PostgresRateGate
{
    /// <summary>Reason codes of the allowed rate (bounded: metric attribute values).</summary>
    public const string RateConfigured = "configured";

    /// <summary>A 429 cut the allowed rate.</summary>
    public const string RateThrottled = "throttled";

    /// <summary>The allowed rate climbs back after clean periods.</summary>
    public const string RateClimbing = "climbing";

    /// <summary>What a moved slot leaves before the slot taken after it, at least: the next caller reads the 429 block
    /// up to 40 ms before its slot, and a 429 answered to the moved call needs a few ms to be stored as the block.</summary>
    private static readonly TimeSpan ReclaimClearance = TimeSpan.FromMilliseconds(60);

    private readonly IOptions<GongOptions> options;
    private readonly TimeProvider time;
    private readonly RateGateClockOffset clock;
    private readonly RateGateRow row;
    private readonly RateGateGauges gauges;
    private readonly ILogger<PostgresRateGate> logger;

    /// <summary>Creates the gate and its metrics (<see cref="RateGateGauges"/>).</summary>
    public PostgresRateGate(NpgsqlDataSource dataSource, IOptions<GongOptions> options, TimeProvider time, IMeterFactory meterFactory, ILogger<PostgresRateGate> logger)
    {
        this.options = options;
        this.time = time;
        this.logger = logger;
        clock = new RateGateClockOffset(options, time);
        row = new RateGateRow(dataSource, options, time, clock);
        gauges = new RateGateGauges(options, meterFactory);
    }

    /// <summary>The allowed rate (calls/s) and its reason code as this replica last saw them.</summary>
    public (double Rate, string Reason) AllowedRate => gauges.AllowedRate;

    /// <summary>Slots this replica gave up because it was too late for them and could not move them.</summary>
    public long SlotsGivenUp => gauges.SlotsGivenUp;

    /// <summary>Slots this replica moved when it was late for them (<see cref="ReclaimAsync"/>).</summary>
    public long SlotsReclaimed => gauges.SlotsReclaimed;

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
    public Task<GateSlot> WaitForSlotAsync(TimeSpan margin, ProspectPriority priority, CancellationToken cancellationToken)
    {
        var gateMargin = new GateMargin(margin, options.Value.RateWindowMargin / 2);
        return WaitForSlotAsync(() => gateMargin, priority, cancellationToken);
    }

    /// <summary>As <see cref="WaitForSlotAsync(TimeSpan, ProspectPriority, CancellationToken)"/>, with the margin and the
    /// latest start read each time a slot is asked for (a caller of a lane that may not reserve far ahead asks again
    /// later, and a young process's margin falls meanwhile): the slot's <see cref="GateSlot.StartNoLaterThan"/> is the
    /// slot plus <see cref="GateMargin.LateStart"/>.</summary>
    /// <param name="margin">Latest arrival after the slot (base margin plus jitter allowance; 0–10 s) and latest start
    /// after it (<see cref="RateGatePacing.ForCall"/>), read at each take.</param>
    /// <param name="priority">The batch's lane.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The slot taken, or the instant the gate opens when it is beyond <c>MaxGateWait</c>.</returns>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public async Task<GateSlot> WaitForSlotAsync(Func<GateMargin> margin, ProspectPriority priority, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(margin);
        var o = options.Value;
        var waitStarted = time.GetTimestamp();
        var reserveAhead = GatePriority.ReserveAhead(priority);
        await WarmClockAsync(cancellationToken).ConfigureAwait(false);
        while (true)
        {
            var (recordedMargin, lateStart) = margin();
            var take = await row.TakeSlotAsync(recordedMargin, priority, reserveAhead, cancellationToken).ConfigureAwait(false);
            gauges.ObserveTake(take, recordedMargin);
            var slot = clock.ToLocal(take.At);
            if (!take.Taken && reserveAhead is { } ahead && take.At - take.Now <= o.MaxGateWait)
            {
                // Within MaxGateWait but further than this lane may reserve: ask again when it may.
                await RateGateWaits.DelayUntilAsync(time, slot - ahead, cancellationToken).ConfigureAwait(false);
                continue;
            }

            if (!take.Taken)
            {
                var reason = take.BlockedUntil is { } b && b >= take.At ? take.BlockedReason : "daily call limit or queue of slots";
                return new GateSlot(false, slot, reason, time.GetElapsedTime(waitStarted), slot, take.At, recordedMargin);
            }

            await RateGateWaits.DelayUntilAsync(time, slot - RateGateWaits.PreciseLead, cancellationToken).ConfigureAwait(false);
            await RateGateWaits.PreciseDelayUntilAsync(time, slot - clock.BlockCheckLead, cancellationToken).ConfigureAwait(false);

            // A 429 seen by any replica while we waited moves the gate; a slot taken before it is void.
            // (Only the 429 block counts here: the daily count already includes this slot.)
            var (current, _, _) = await row.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (current is { } blocked && blocked > take.At)
            {
                continue;
            }

            await RateGateWaits.PreciseDelayUntilAsync(time, slot, cancellationToken).ConfigureAwait(false);

            var taken = await UseOrMoveAsync(new GateSlot(true, slot, null, TimeSpan.Zero, slot + lateStart, take.At, recordedMargin), cancellationToken).ConfigureAwait(false);
            if (taken is not null)
            {
                return taken with { Waited = time.GetElapsedTime(waitStarted) };
            }
        }
    }

    /// <summary>
    /// For a caller late for <paramref name="slot"/> (it has not sent): moves the slot to shortly ahead of now (the
    /// slowest recent gate read plus 3 ms, 8–40 ms) and waits until it, when no slot taken since depends on its arrival
    /// (the slot <c>RequestsPerSecond</c> places later is not taken yet), the slot ends up at most <see cref="MaxMove"/>
    /// after it was first taken (167 ms at 3 calls/s), no 429 block is in force and the UTC day stays the same. The
    /// lateness then costs its own length instead of the slot. A normal or bulk caller takes a slot at most 0.8 s ahead
    /// (<see cref="GatePriority.ReserveAhead"/>), so the later slot is usually not taken yet.
    /// </summary>
    /// <param name="slot">The slot taken or last moved (<see cref="GateSlot.Taken"/>).</param>
    /// <param name="cancellationToken">Cancels the update and the wait.</param>
    /// <returns>The moved slot, now come (start it by <see cref="GateSlot.StartNoLaterThan"/>), or null: give the slot
    /// up (<see cref="GiveUpAsync"/>).</returns>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public async Task<GateSlot?> ReclaimAsync(GateSlot slot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(slot);
        var o = options.Value;
        var maxMove = MaxMove(o.RequestsPerSecond);
        var first = slot.ScheduledAt - slot.MovedBy;
        if (maxMove <= TimeSpan.Zero || await row.ReclaimAsync(slot.ScheduledAt, first, slot.Margin, clock.BlockCheckLead, maxMove, cancellationToken).ConfigureAwait(false) is not { } at)
        {
            return null;
        }

        gauges.Reclaimed();
        var local = clock.ToLocal(at);
        await RateGateWaits.PreciseDelayUntilAsync(time, local, cancellationToken).ConfigureAwait(false);
        return slot with { At = local, StartNoLaterThan = local + (slot.StartNoLaterThan - slot.At), ScheduledAt = at, MovedBy = at - first };
    }

    /// <summary>A caller that wakes late would arrive closer to the next slots than the window allows. Beyond half the
    /// base margin it moves its slot shortly ahead while no later slot depends on it (each move is later, and moves end
    /// <see cref="MaxMove"/> after the first slot); else it gives the slot up (keeping the window conservative,
    /// refunding the daily count) and the caller queues again (null).</summary>
    private async Task<GateSlot?> UseOrMoveAsync(GateSlot slot, CancellationToken cancellationToken)
    {
        while (time.GetUtcNow() > slot.StartNoLaterThan)
        {
            if (await ReclaimAsync(slot, cancellationToken).ConfigureAwait(false) is not { } moved)
            {
                LogWokeLate(slot.At, (time.GetUtcNow() - slot.At).TotalMilliseconds);
                await GiveUpAsync(slot, cancellationToken).ConfigureAwait(false);
                return null;
            }

            slot = moved;
        }

        return slot;
    }

    /// <summary>How far a late caller may move its slot after it was taken: half a spacing, and at most the spacing
    /// less <see cref="ReclaimClearance"/> (zero from 16.7 calls/s up: no move).</summary>
    /// <param name="requestsPerSecond">Gong:RequestsPerSecond (1–100).</param>
    public static TimeSpan MaxMove(int requestsPerSecond)
    {
        var spacing = TimeSpan.FromSeconds(1.0 / Math.Max(1, requestsPerSecond));
        var half = spacing / 2;
        var clear = spacing - ReclaimClearance;
        return half < clear ? half : clear;
    }

    /// <summary>
    /// For a call that reached its connection at <paramref name="departed"/> (this process's clock) after its slot's
    /// latest start (<see cref="GateSlot.StartNoLaterThan"/>: a stall between the lane's check and the socket): moves its recorded
    /// latest arrival that much later, so the slot <c>RequestsPerSecond</c> places later, if not taken yet, is spaced a
    /// second after the real arrival. Counted in <c>flow_assignment.rate_gate.late_departures</c> (moved) or
    /// <c>late_departures_unmoved</c> (that slot was already taken).
    /// </summary>
    /// <param name="slot">The slot the call was sent in.</param>
    /// <param name="departed">When its first bytes were handed to the connection (<see cref="GongLane.WatchDeparture"/>).</param>
    /// <param name="cancellationToken">Cancels the update.</param>
    /// <returns>Null when the call departed by its latest start (nothing to do); else whether its arrival moved (false:
    /// the slot that depends on it was already taken).</returns>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task<bool?> DepartedAsync(GateSlot slot, DateTimeOffset departed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(slot);
        if (departed <= slot.StartNoLaterThan)
        {
            return null;
        }

        var moved = await row.DepartedLateAsync(slot.ScheduledAt, slot.Margin, slot.ScheduledAt + (departed - slot.At), cancellationToken).ConfigureAwait(false);
        gauges.DepartedLate(moved);
        return moved;
    }

    /// <summary>Late departures whose recorded arrival moved (<see cref="DepartedAsync"/>), and those too late to move.</summary>
    public (long Moved, long Unmoved) LateDepartures => (gauges.LateDepartures, gauges.LateDeparturesUnmoved);

    /// <summary>Gives a slot up that its caller could neither use nor move: counts it
    /// (<c>flow_assignment.rate_gate.slots_given_up</c>) and refunds its daily count on the day it was first taken (the
    /// slot stays in the window: conservative).</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public Task GiveUpAsync(GateSlot slot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(slot);
        gauges.GaveUp();
        return row.RefundAsync(slot.ScheduledAt - slot.MovedBy, cancellationToken);
    }

    /// <summary>Blocks the gate for every replica until <paramref name="until"/> (never shortens an existing block) and
    /// cuts the allowed rate by <c>RateDecreaseFactor</c> (at most once per 2 s).</summary>
    /// <param name="until">Instant on this process's clock (Retry-After plus margin).</param>
    /// <param name="reason">Stored in <c>blocked_reason</c> (max 512 characters).</param>
    /// <param name="cancellationToken">Cancels the update.</param>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task BlockAsync(DateTimeOffset until, string reason, CancellationToken cancellationToken)
    {
        if (await row.BlockAsync(clock.ToGate(until), reason, cancellationToken).ConfigureAwait(false) is { } rate)
        {
            gauges.ObserveRate(rate, RateThrottled);
        }
    }

    /// <summary>The instant (this process's clock) before which no call may start (a 429 block or a spent daily
    /// budget), or null.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    /// <exception cref="InvalidOperationException">The rate_gate row is missing (migrations not applied).</exception>
    public async Task<DateTimeOffset?> GetBlockedUntilAsync(CancellationToken cancellationToken)
    {
        var (blocked, day, count) = await row.ReadAsync(cancellationToken).ConfigureAwait(false);
        var now = clock.ToGate(time.GetUtcNow());
        if (day == DateOnly.FromDateTime(now.UtcDateTime) && count >= options.Value.DailyCallLimit)
        {
            var midnight = new DateTimeOffset(day.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            blocked = blocked is { } b && b > midnight ? b : midnight;
        }

        return blocked is { } until && until > now ? clock.ToLocal(until) : null;
    }

    /// <summary>Before this process's first slot: a few clock reads, so the offset comes from a fast round trip.</summary>
    private async Task WarmClockAsync(CancellationToken cancellationToken)
    {
        while (clock.NeedsWarmUp)
        {
            await row.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "A caller woke {LateMs:F1} ms after its rate-gate slot at {SlotAt:O} and the slot could not move (a later slot depends on it, the move would exceed half a spacing, or a 429 block is in force): the slot is given up and the caller takes another")]
    private partial void LogWokeLate(DateTimeOffset slotAt, double lateMs);
}
