using System.Diagnostics.Metrics;
using Npgsql;

namespace Worker.Host.Operations;

/// <summary>
/// Gauges per priority lane (issue 15), read from <c>ops_priority_lanes</c> by <see cref="DatabaseGauges"/> every
/// <see cref="OperationsOptions.GaugeRefreshInterval"/>: <c>flow_assignment_priority_backlog_prospects{priority}</c>
/// (Pending) and <c>flow_assignment_priority_oldest_pending_age_seconds{priority}</c>; <c>priority</c> is high, normal
/// or bulk. Throughput per lane is the counter <c>flow_assignment_priority_prospects_completed_total</c>. Whole-database
/// figures, the same in every replica: aggregate with max.
/// </summary>
internal sealed class PriorityLaneGauges
{
    private readonly NpgsqlDataSource dataSource;
    private volatile IReadOnlyList<PriorityLaneFigures>? lanes;

    /// <summary>Creates the gauges on the worker meter.</summary>
    public PriorityLaneGauges(IMeterFactory meterFactory, NpgsqlDataSource dataSource, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        this.dataSource = dataSource;
        var meter = meterFactory.Create(WorkerMetrics.MeterName);
        meter.CreateObservableGauge("flow_assignment.priority.backlog.prospects", () => Observe(l => l.Pending), "{prospect}",
            "Pending prospects per priority lane (high, normal, bulk); whole database.");
        meter.CreateObservableGauge("flow_assignment.priority.oldest_pending.age", () => Observe(l => l.OldestPending is { } at ? Math.Max(0, (timeProvider.GetUtcNow() - at).TotalSeconds) : 0), "s",
            "Age of the oldest Pending prospect per priority lane (0 when none).");
    }

    /// <summary>Reads the lanes once; called by <see cref="DatabaseGauges"/> on each of its refreshes.</summary>
    internal async Task SampleAsync(CancellationToken cancellationToken) =>
        lanes = await PriorityLaneReport.LoadAsync(dataSource, cancellationToken).ConfigureAwait(false);

    private IEnumerable<Measurement<double>> Observe(Func<PriorityLaneFigures, double> value) =>
        (lanes ?? []).Select(l => new Measurement<double>(value(l), new KeyValuePair<string, object?>("priority", l.Priority.ToLowerInvariant())));
}
