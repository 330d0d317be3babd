using System.ComponentModel.DataAnnotations;

namespace Worker.Host.Operations;

/// <summary>
/// Settings of the operational shell (section <c>Operations</c>, env <c>Operations__ShutdownTimeout</c> etc.):
/// graceful shutdown, readiness thresholds and the database-backed gauges on <c>/metrics</c>.
/// </summary>
public sealed class OperationsOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Operations";

    /// <summary>
    /// How long the host waits, after SIGTERM, for hosted services (dispatch, relay, the bus) to stop: in-flight
    /// batches finish or are released within it. Default 25 s, 1 s to 10 min. Kubernetes'
    /// <c>terminationGracePeriodSeconds</c> must be larger (the kubelet kills the process when it runs out).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00",
        ErrorMessage = "Operations:ShutdownTimeout (Operations__ShutdownTimeout) must be between 00:00:01 and 00:10:00.")]
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>
    /// Readiness fails when the dispatch loop has not turned for this long (or, before its first turn, when the
    /// process started this long ago). Default 60 s, 5 s to 1 h. The loop beats on every turn, idle or not, so this
    /// only trips when it hangs or has died.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:05", "01:00:00",
        ErrorMessage = "Operations:DispatchStaleAfter (Operations__DispatchStaleAfter) must be between 00:00:05 and 01:00:00.")]
    public TimeSpan DispatchStaleAfter { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Time limit of each health check (a check that exceeds it is Unhealthy). Default 5 s, 100 ms to 60 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00",
        ErrorMessage = "Operations:HealthCheckTimeout (Operations__HealthCheckTimeout) must be between 00:00:00.100 and 00:01:00.")]
    public TimeSpan HealthCheckTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How often each replica reads backlog, outbox and rate-gate figures from Postgres for the gauges on
    /// <c>/metrics</c>. Default 15 s, 1 s to 10 min: a few indexed count queries per replica per interval.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00",
        ErrorMessage = "Operations:GaugeRefreshInterval (Operations__GaugeRefreshInterval) must be between 00:00:01 and 00:10:00.")]
    public TimeSpan GaugeRefreshInterval { get; set; } = TimeSpan.FromSeconds(15);
}
