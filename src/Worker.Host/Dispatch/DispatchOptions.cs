using System.ComponentModel.DataAnnotations;

namespace Worker.Host.Dispatch;

/// <summary>
/// Coalescing, claiming and concurrency of the dispatcher (section <c>Dispatch</c>, env <c>Dispatch__…</c>).
/// </summary>
public sealed class DispatchOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Dispatch";

    /// <summary>
    /// Run the dispatcher in this replica (default true). Read once at start; relay and retention run either way.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// How long the oldest pending prospect of a (flow, owner) group may wait for company before its group is sent
    /// with fewer than <see cref="MaxBatchSize"/> prospects. Default 2 s; 0 sends as soon as anything is pending.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00", ErrorMessage = "Dispatch:MaxBatchDelay (Dispatch__MaxBatchDelay) must be between 00:00:00 and 01:00:00.")]
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// <see cref="MaxBatchDelay"/> for a group holding high-priority prospects (default 250 ms): the oldest high row
    /// waits at most this long for company before its group is sent, and its group goes before every other.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00", ErrorMessage = "Dispatch:HighPriorityMaxBatchDelay (Dispatch__HighPriorityMaxBatchDelay) must be between 00:00:00 and 01:00:00.")]
    public TimeSpan HighPriorityMaxBatchDelay { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Least share of the batches this replica claims that serve bulk prospects first while any are ready (default
    /// 0.1; 0–1): under sustained high and normal load every ⌈1 / share⌉-th batch is a bulk turn, so bulk never starves.
    /// </summary>
    [Range(0.0, 1.0, ErrorMessage = "Dispatch:BulkMinimumShare (Dispatch__BulkMinimumShare) must be between 0 and 1.")]
    public double BulkMinimumShare { get; set; } = 0.1;

    /// <summary>
    /// Unique prospect ids per Gong call, 1–200 (Gong's endpoint page: at most 200). Read from <c>Gong:MaxBatchSize</c>
    /// (the Gong client's limit) unless <c>Dispatch:MaxBatchSize</c> is set; default 200.
    /// </summary>
    [Range(1, 200, ErrorMessage = "Dispatch:MaxBatchSize (Dispatch__MaxBatchSize, or Gong:MaxBatchSize) must be 1–200.")]
    public int MaxBatchSize { get; set; } = 200;

    /// <summary>
    /// Batches this replica keeps in flight at once (default 8). At Gong's 3 calls/s and 1–2 s per call, 6 are needed
    /// to keep the rate gate busy; the shared gate, not this bound, keeps the company under Gong's limit.
    /// </summary>
    [Range(1, 64, ErrorMessage = "Dispatch:MaxConcurrentBatches (Dispatch__MaxConcurrentBatches) must be 1–64.")]
    public int MaxConcurrentBatches { get; set; } = 8;

    /// <summary>
    /// How long a claimed batch belongs to its replica without renewal (default 2 min). The holder renews it every third
    /// of this while the call runs; after it expires any replica reclaims the batch as outcome unknown. Must exceed a
    /// database hiccup, not a Gong call (renewal runs during the call).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "Dispatch:LeaseDuration (Dispatch__LeaseDuration) must be between 00:00:01 and 01:00:00.")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Longest idle wait between looks at the pending backlog (default 500 ms). The loop also wakes when a batch
    /// finishes and when a group's <see cref="MaxBatchDelay"/> runs out.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00", ErrorMessage = "Dispatch:PollInterval (Dispatch__PollInterval) must be between 00:00:00.010 and 00:01:00.")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Calls that may end in UnexpectedError or an unknown outcome for one prospect before it is recorded
    /// <c>Failed</c> / <c>RetriesExhausted</c> (default 3). 429s, 401 pauses and a shutdown before the call was sent never count; a call cut by shutdown after it was sent
    /// (outcome unknown) uses an attempt.
    /// </summary>
    [Range(1, 100, ErrorMessage = "Dispatch:MaxAttempts (Dispatch__MaxAttempts) must be 1–100.")]
    public int MaxAttempts { get; set; } = 3;

    /// <summary>
    /// Wait before a prospect whose call ended in UnexpectedError is sent again, when Gong's client names no time
    /// (default 5 s).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00", ErrorMessage = "Dispatch:RetryDelay (Dispatch__RetryDelay) must be between 00:00:00 and 01:00:00.")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// At shutdown, how long before the host's shutdown timeout in-flight calls are cancelled so their prospects can be
    /// released to Pending (default 5 s; capped at half the shutdown timeout).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00", ErrorMessage = "Dispatch:ShutdownReserve (Dispatch__ShutdownReserve) must be between 00:00:00 and 00:10:00.")]
    public TimeSpan ShutdownReserve { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// This replica's name in <c>dispatch_batches.claimed_by</c> and <c>gong_calls.replica</c> (1–200 characters).
    /// Default: the <c>POD_NAME</c> environment variable, else the machine name.
    /// </summary>
    [Required(ErrorMessage = "Dispatch:ReplicaName (Dispatch__ReplicaName) must not be empty.")]
    [StringLength(200, MinimumLength = 1, ErrorMessage = "Dispatch:ReplicaName (Dispatch__ReplicaName) must be 1–200 characters.")]
    public string ReplicaName { get; set; } = DefaultReplicaName();

    private static string DefaultReplicaName()
    {
        var pod = Environment.GetEnvironmentVariable("POD_NAME");
        return string.IsNullOrWhiteSpace(pod) ? Environment.MachineName : pod;
    }
}
