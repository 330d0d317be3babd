using Worker.Persistence.Entities;

namespace Worker.Host.Gong;

/// <summary>
/// How the shared rate gate serves priority lanes (issue 15): how far ahead a caller may reserve a slot, and the daily
/// budget each lane may spend.
/// </summary>
/// <remarks>
/// The gate hands slots out first come, first served, and a caller waits for the slot it took. Were normal and bulk
/// callers allowed to reserve slots seconds ahead (MaxConcurrentBatches of them per replica), a high call would queue
/// behind all of them. So only a high caller reserves any slot; a normal caller takes one only when it starts within
/// <see cref="ReserveLead"/> (0.8 s) of now, a bulk caller within <see cref="BulkHeadStart"/> less, and otherwise waits
/// until then and asks again. A high call therefore waits behind less than a second of normal and bulk slots, however
/// many batches and replicas wait, a waiting normal caller gets the next slot before a waiting bulk caller, and the gate
/// still has a caller holding each slot well before it comes (a lead of several intervals absorbs late wake-ups on a
/// busy machine: with a lead of one interval, 3 calls/s fell to 1.5 at a load average of 35 on 2 cores, because slots
/// passed before their waiter woke).
/// </remarks>
internal static class GatePriority
{
    /// <summary>How long before its start a normal caller may take a slot (round trip, precise wait, late wake-ups on a
    /// busy machine). Less than a second, so that when a caller is up to 0.2 s late for its slot, the slot whose window
    /// starts at it (<c>RequestsPerSecond</c> places later, a second plus the margin after it) is not taken yet, and the
    /// late caller may move its slot instead of giving it up (<see cref="PostgresRateGate.ReclaimAsync"/>).</summary>
    public static readonly TimeSpan ReserveLead = TimeSpan.FromMilliseconds(800);

    /// <summary>How much earlier a waiting normal caller asks than a waiting bulk caller.</summary>
    public static readonly TimeSpan BulkHeadStart = TimeSpan.FromMilliseconds(100);

    /// <summary>How far ahead of now a caller of <paramref name="priority"/> may take a slot; null: no bound (high).</summary>
    /// <param name="priority">The batch's lane.</param>
    public static TimeSpan? ReserveAhead(ProspectPriority priority) => priority switch
    {
        ProspectPriority.High => null,
        ProspectPriority.Bulk => ReserveLead - BulkHeadStart,
        _ => ReserveLead,
    };

    /// <summary>The part of <c>Gong:DailyCallLimit</c> kept for high-priority calls: <c>Gong:DailyReserveForHigh</c>,
    /// at most a tenth of the limit (rounded down).</summary>
    public static int DailyReserve(GongOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Math.Min(options.DailyReserveForHigh, options.DailyCallLimit / 10);
    }

    /// <summary>Calls per UTC day a caller of <paramref name="priority"/> may count: the whole limit for high, the limit
    /// less <see cref="DailyReserve"/> for normal and bulk.</summary>
    public static int DailyLimit(ProspectPriority priority, GongOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return priority == ProspectPriority.High ? options.DailyCallLimit : options.DailyCallLimit - DailyReserve(options);
    }
}
