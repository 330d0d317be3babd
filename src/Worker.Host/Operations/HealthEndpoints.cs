namespace Worker.Host.Operations;

/// <summary>Paths and tags of the operational HTTP endpoints (also checked against <c>deploy/</c> by a test).</summary>
public static class HealthEndpoints
{
    /// <summary>
    /// Liveness: the checks tagged <see cref="LiveTag"/>, i.e. only whether the MassTransit bus failed to start for good
    /// (<c>BusStartHealthCheck</c>: 503, and a restart is the retry). No dependency check: a Postgres or RabbitMQ outage
    /// after start keeps it 200, since restarting pods would not fix it.
    /// </summary>
    public const string LivePath = "/health/live";

    /// <summary>Readiness: every check tagged <see cref="ReadyTag"/>; 200 when Healthy or Degraded, 503 when Unhealthy.</summary>
    public const string ReadyPath = "/health/ready";

    /// <summary>Prometheus scrape endpoint (OpenTelemetry exporter).</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>Tag of the checks behind <see cref="LivePath"/>: only a bus that failed to start for good (see <c>BusStartHealthCheck</c>).</summary>
    public const string LiveTag = "live";

    /// <summary>Tag of the checks behind <see cref="ReadyPath"/> (MassTransit tags its bus check with it too).</summary>
    public const string ReadyTag = "ready";

    /// <summary>The HTTP port the container listens on (<c>Urls</c> in appsettings.json, probes and Service in deploy/).</summary>
    public const int HttpPort = 8080;
}
