namespace Worker.IntegrationTests;

/// <summary>
/// Settles this test process's heap before a real-time rate test. The in-process Gong simulator stamps each arrival in
/// this process, so a blocking GC pause here stamps a call that arrived during it late, next to the call after it, and
/// the simulator counts the two as bunched (a self-caused 429 the worker did not cause). After minutes of tests the
/// heap holds much garbage and a full collection can come at any time; a forced one before the test makes it unlikely
/// during it. Also reports the pauses a test saw (<see cref="PausesSince"/>), for its failure message.
/// </summary>
internal static class HeapSettle
{
    /// <summary>Collects every generation (blocking, compacting) and runs pending finalizers; returns the process's total
    /// GC pause so far, to pass to <see cref="PausesSince"/>.</summary>
    public static (TimeSpan Pause, int Gen2) Now()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        return (GC.GetTotalPauseDuration(), GC.CollectionCount(2));
    }

    /// <summary>The GC pauses of this process since <paramref name="mark"/> (total ms, gen2 collections).</summary>
    public static string PausesSince((TimeSpan Pause, int Gen2) mark) =>
        $"GC in the test process since the start: {(GC.GetTotalPauseDuration() - mark.Pause).TotalMilliseconds:F0} ms paused, {GC.CollectionCount(2) - mark.Gen2} gen2 collections";
}
