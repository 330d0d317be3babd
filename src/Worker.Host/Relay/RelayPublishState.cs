using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Worker.Host.Relay;

/// <summary>
/// Whether this replica's relay can publish result events right now, as its last round found: failing from the first
/// round whose publishes all failed (broker refusing or not confirming, e.g. a memory alarm blocking publishers) or
/// that could not read the outbox, until the first round that publishes. The relay logs only the changes of this state,
/// and readiness shows it (<see cref="RelayHealthCheck"/>).
/// </summary>
internal sealed class RelayPublishState
{
    private readonly Lock gate = new();

    /// <summary>Since when publishing fails (UTC), or null while it works.</summary>
    public DateTimeOffset? FailingSince { get; private set; }

    /// <summary>The latest failure's description, or null while publishing works.</summary>
    public string? LastError { get; private set; }

    /// <summary>Records a failed round; true when this starts a failing period (log it), false while it continues.</summary>
    /// <param name="error">What failed, for the health description.</param>
    /// <param name="now">The round's end (UTC).</param>
    public bool Failed(string error, DateTimeOffset now)
    {
        lock (gate)
        {
            LastError = error;
            if (FailingSince is not null)
            {
                return false;
            }

            FailingSince = now;
            return true;
        }
    }

    /// <summary>Records a round that published; returns when the failing period it ends began, or null when publishing already worked.</summary>
    public DateTimeOffset? Succeeded()
    {
        lock (gate)
        {
            var since = FailingSince;
            FailingSince = null;
            LastError = null;
            return since;
        }
    }
}

/// <summary>
/// Readiness entry <c>relay</c>: Degraded while <see cref="RelayPublishState"/> says publishing result events fails
/// (with the time it started and the last error), else Healthy. Degraded keeps <c>/health/ready</c> at 200: the broker
/// refusing or blocking publishers is the same for every replica, the outcomes are safe in the outbox, and ingest and
/// dispatch still work; alert on <c>flow_assignment_outbox_oldest_unpublished_age_seconds</c>.
/// </summary>
internal sealed class RelayHealthCheck(RelayPublishState state) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (state.FailingSince is { } since)
        {
            var data = new Dictionary<string, object> { ["failingSince"] = since.ToString("O", CultureInfo.InvariantCulture) };
            return Task.FromResult(HealthCheckResult.Degraded(
                $"Publishing result events fails since {since:O}; the events wait in outbox_messages and are retried. Last error: {state.LastError}",
                data: data));
        }

        return Task.FromResult(HealthCheckResult.Healthy("Result events are being published (or there was nothing to publish)."));
    }
}
