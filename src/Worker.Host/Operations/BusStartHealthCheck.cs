using MassTransit;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Worker.Host.Operations;

/// <summary>
/// Liveness: Unhealthy when the MassTransit bus failed to start for good. MassTransit retries an unreachable broker
/// forever, but not a refused login (ACCESS_REFUSED, e.g. a password rotated before the user existed): the bus stays
/// "start faulted" and would never consume again. Failing liveness makes Kubernetes restart the container, which
/// tries again. A broker outage after start is not this case (MassTransit reconnects), so it stays live.
/// </summary>
internal sealed class BusStartHealthCheck(IBusControl bus) : IHealthCheck
{
    /// <summary>The phrase MassTransit 8 puts in the bus health description after a failed start.</summary>
    internal const string StartFaulted = "start faulted";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var health = bus.CheckHealth();
        return Task.FromResult(health.Description?.Contains(StartFaulted, StringComparison.OrdinalIgnoreCase) == true
            ? HealthCheckResult.Unhealthy($"The RabbitMQ bus failed to start and will not retry by itself: {health.Description}. Restart the process after fixing the cause (RabbitMq:* settings).")
            : HealthCheckResult.Healthy("The bus started (or is still connecting)."));
    }
}
