namespace Worker.Host.Operations;

/// <summary>Paths and tags of the operational HTTP endpoints (also checked against <c>deploy/</c> by a test).</summary>
public static class HealthEndpoints
{
    /// <summary>Liveness: the process answers HTTP; runs no check (a dependency outage must not restart pods).</summary>
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
