using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Worker.Host.Operations;

/// <summary>Readiness turns Unhealthy as soon as the host is stopping (SIGTERM), before the hosted services drain.</summary>
internal sealed class ShutdownHealthCheck(IHostApplicationLifetime lifetime) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(lifetime.ApplicationStopping.IsCancellationRequested
            ? HealthCheckResult.Unhealthy("Shutting down: draining in-flight work.")
            : HealthCheckResult.Healthy("Running."));
}
