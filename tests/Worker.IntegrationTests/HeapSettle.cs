using System.Runtime;

namespace Worker.IntegrationTests;

/// <summary>
/// Keeps this test process's GC out of a real-time rate test. The in-process Gong simulator stamps each arrival in
/// this process, so a blocking GC pause here stamps a call that reached its socket on time late, next to the call after
/// it, and the simulator counts the two as bunched: a self-caused 429 the worker did not cause (Gong's door has no such
/// pause). After minutes of tests the heap holds much garbage and a collection can come at any time. So a rate test
/// starts with a full collection and then a region without GC (<see cref="GC.TryStartNoGCRegion(long)"/>, 1 GiB of
/// allocation), ended by <see cref="EndQuiet"/>, by the next rate test, or by the runtime once the budget is spent. The
/// drain benchmark does the same for its simulator (with 140,000 prospects in memory its gen1 pauses reached 30 ms and
/// drew self-caused 429s; in a region: none, and no arrival more than 8.4 ms after its start).
/// The worker hosts in this process do not collect either then: their own stalls are tested on purpose
/// (RateGateDepartureTests, RateGateReclaimTests). Also reports the pauses a test saw (<see cref="PausesSince"/>).
/// </summary>
internal static class HeapSettle
{
    private const long QuietBudget = 1L << 30;
    private static readonly Lock Sync = new();

    /// <summary>Collects every generation (blocking, compacting), runs pending finalizers and starts a region without GC
    /// (ending one a previous rate test left); returns the process's total GC pause so far, to pass to
    /// <see cref="PausesSince"/>.</summary>
    public static (TimeSpan Pause, int Gen2) Now()
    {
        lock (Sync)
        {
            EndQuietLocked();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            try
            {
                GC.TryStartNoGCRegion(QuietBudget);
            }
            catch (Exception ex) when (ex is ArgumentOutOfRangeException or InvalidOperationException)
            {
                // Not granted (budget beyond what this runtime allows, or a region already started elsewhere): the
                // collection above still makes a pause unlikely.
            }

            return (GC.GetTotalPauseDuration(), GC.CollectionCount(2));
        }
    }

    /// <summary>Ends the region without GC that <see cref="Now"/> started, if it still holds.</summary>
    public static void EndQuiet()
    {
        lock (Sync)
        {
            EndQuietLocked();
        }
    }

    /// <summary>The GC pauses of this process since <paramref name="mark"/> (total ms, gen2 collections), and whether
    /// the region without GC still holds.</summary>
    public static string PausesSince((TimeSpan Pause, int Gen2) mark) =>
        $"GC in the test process since the start: {(GC.GetTotalPauseDuration() - mark.Pause).TotalMilliseconds:F0} ms paused, {GC.CollectionCount(2) - mark.Gen2} gen2 collections, no-GC region {(GCSettings.LatencyMode == GCLatencyMode.NoGCRegion ? "held" : "ended")}";

    private static void EndQuietLocked()
    {
        if (GCSettings.LatencyMode != GCLatencyMode.NoGCRegion)
        {
            return;
        }

        try
        {
            GC.EndNoGCRegion();
        }
        catch (InvalidOperationException)
        {
            // The runtime ended it already (budget spent or a collection induced).
        }
    }
}
