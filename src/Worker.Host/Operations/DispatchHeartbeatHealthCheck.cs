using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Worker.Host.Operations;

/// <summary>
/// Readiness: the dispatch loop's last <see cref="DispatchHeartbeat.Beat"/> is younger than
/// <see cref="OperationsOptions.DispatchStaleAfter"/>. Before the first beat the process start counts as one, so a
/// starting replica is ready while its loop warms up, and one whose loop never starts turns unready.
/// </summary>
internal sealed class DispatchHeartbeatHealthCheck(
    DispatchHeartbeat heartbeat,
    TimeProvider timeProvider,
    IOptions<OperationsOptions> options) : IHealthCheck
{
    private readonly DateTimeOffset startedAt = timeProvider.GetUtcNow();

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var now = timeProvider.GetUtcNow();
        var limit = options.Value.DispatchStaleAfter;
        var last = heartbeat.LastBeat;
        var age = now - (last ?? startedAt);
        var data = new Dictionary<string, object>
        {
            ["lastBeat"] = last?.ToString("O", System.Globalization.CultureInfo.InvariantCulture) ?? "none",
            ["ageSeconds"] = Math.Round(age.TotalSeconds, 1),
            ["staleAfterSeconds"] = limit.TotalSeconds,
        };
        if (age <= limit)
        {
            return Task.FromResult(HealthCheckResult.Healthy(
                last is null ? "Dispatch loop starting (no turn yet)." : "Dispatch loop is turning.", data));
        }

        return Task.FromResult(HealthCheckResult.Unhealthy(
            last is null
                ? $"Dispatch loop has not turned since start {age.TotalSeconds:F0} s ago (limit Operations:DispatchStaleAfter = {limit.TotalSeconds:F0} s)."
                : $"Dispatch loop last turned {age.TotalSeconds:F0} s ago (limit Operations:DispatchStaleAfter = {limit.TotalSeconds:F0} s).",
            data: data));
    }
}
