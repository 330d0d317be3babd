using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Host.Persistence;

namespace Worker.Host.Operations;

/// <summary>
/// Observable gauges on the <c>Worker</c> meter whose values come from Postgres, read every
/// <see cref="OperationsOptions.GaugeRefreshInterval"/> (default 15 s) by this background service, plus two read live
/// from the process. Prometheus names: <c>flow_assignment_backlog_prospects{state}</c>, <c>flow_assignment_backlog_oldest_pending_age_seconds</c>,
/// <c>flow_assignment_backlog_group_prospects{flow_id,owner}</c> (the <see cref="MaxGroupsReported"/> largest groups),
/// <c>flow_assignment_outbox_unpublished</c>, <c>flow_assignment_outbox_oldest_unpublished_age_seconds</c>,
/// <c>flow_assignment_rate_gate_blocked_remaining_seconds{reason}</c>, <c>flow_assignment_rate_gate_calls_today</c>,
/// <c>flow_assignment_rate_gate_daily_limit</c>, <c>flow_assignment_gong_paused</c>,
/// <c>flow_assignment_dispatch_heartbeat_age_seconds</c>, <c>flow_assignment_gauges_sample_age_seconds</c>.
/// The figures are the whole database's (every replica reports the same values): aggregate with max, not sum.
/// </summary>
internal sealed partial class DatabaseGauges : BackgroundService
{
    /// <summary>Most (flow, owner) groups reported in <c>flow_assignment_backlog_group_prospects</c> (the largest backlogs); keeps the series count bounded.</summary>
    public const int MaxGroupsReported = 20;

    /// <summary><c>reason</c> of the blocked-remaining series for a 429 block (Retry-After, or the backoff after a 429 without one).</summary>
    public const string BlockedByTooManyRequests = "too_many_requests";

    /// <summary><c>reason</c> of the blocked-remaining series for a spent daily budget (open again at 00:00 UTC).</summary>
    public const string BlockedByDailyLimit = "daily_limit";

    private static readonly string SampleSql = $"""
        SELECT status, count(*) FROM prospect_assignments WHERE status IN ({StatusSql.Pending}, {StatusSql.InFlight}) GROUP BY status;
        SELECT min(created_at) FROM prospect_assignments WHERE status = {StatusSql.Pending};
        SELECT count(*), min(created_at) FROM outbox_messages WHERE published_at IS NULL AND failed_at IS NULL;
        SELECT blocked_until, day, day_call_count FROM rate_gate WHERE id = 1;
        SELECT flow_id, owner_email, count(*) FROM prospect_assignments WHERE status IN ({StatusSql.Pending}, {StatusSql.InFlight})
        GROUP BY flow_id, owner_email ORDER BY 3 DESC, 1, 2 LIMIT {MaxGroupsReported};
        """;

    private readonly NpgsqlDataSource dataSource;
    private readonly TimeProvider timeProvider;
    private readonly IOptions<OperationsOptions> options;
    private readonly IServiceProvider services;
    private readonly DispatchHeartbeat heartbeat;
    private readonly ILogger<DatabaseGauges> logger;
    private volatile Snapshot? snapshot;

    public DatabaseGauges(
        IMeterFactory meterFactory,
        NpgsqlDataSource dataSource,
        TimeProvider timeProvider,
        IOptions<OperationsOptions> options,
        IServiceProvider services,
        DispatchHeartbeat heartbeat,
        ILogger<DatabaseGauges> logger)
    {
        this.dataSource = dataSource;
        this.timeProvider = timeProvider;
        this.options = options;
        this.services = services;
        this.heartbeat = heartbeat;
        this.logger = logger;

        // The factory hands back the same Meter for the same name, so these join WorkerMetrics' instruments.
        var meter = meterFactory.Create(WorkerMetrics.MeterName);
        meter.CreateObservableGauge("flow_assignment.backlog.prospects", ObserveBacklog, "{prospect}",
            "Prospects not yet final, by state (Pending, InFlight); whole database.");
        meter.CreateObservableGauge("flow_assignment.backlog.oldest_pending.age", () => Observe(s => s.OldestPendingAgeSeconds), "s",
            "Age of the oldest Pending prospect (0 when none).");
        meter.CreateObservableGauge("flow_assignment.backlog.group.prospects", ObserveGroups, "{prospect}",
            $"Prospects not yet final (Pending and InFlight) per (flow_id, owner) group, owner masked; the {MaxGroupsReported} largest groups only.");
        meter.CreateObservableGauge("flow_assignment.outbox.unpublished", () => Observe(s => (double)s.OutboxUnpublished), "{message}",
            "Outbox rows committed but not yet published.");
        meter.CreateObservableGauge("flow_assignment.outbox.oldest_unpublished.age", () => Observe(s => s.OldestUnpublishedAgeSeconds), "s",
            "Age of the oldest unpublished outbox row (0 when none): the relay's lag.");
        meter.CreateObservableGauge("flow_assignment.rate_gate.blocked_remaining", ObserveBlockedRemaining, "s",
            "Seconds until the shared rate gate opens again, by reason: too_many_requests (a 429's Retry-After) or daily_limit (Gong:DailyCallLimit calls counted today: closed until 00:00 UTC); 0 when that reason does not block.");
        meter.CreateObservableGauge("flow_assignment.rate_gate.calls_today", () => Observe(s => (double)s.CallsToday), "{call}",
            "Gong calls counted by the shared rate gate on its current UTC day (against Gong:DailyCallLimit).");
        meter.CreateObservableGauge("flow_assignment.rate_gate.daily_limit", ObserveDailyLimit, "{call}",
            "Gong:DailyCallLimit, the daily call budget of all replicas together: calls_today / daily_limit is the quota used.");
        meter.CreateObservableGauge("flow_assignment.gong.paused", ObservePaused, "{pause}",
            "1 while dispatch is paused because Gong answered 401 (credentials), else 0.");
        meter.CreateObservableGauge("flow_assignment.dispatch.heartbeat.age", ObserveHeartbeatAge, "s",
            "Seconds since the dispatch loop last turned in this replica.");
        meter.CreateObservableGauge("flow_assignment.gauges.sample.age", ObserveSampleAge, "s",
            "Seconds since the database gauges were last read successfully.");
    }

    /// <summary>Reads the figures once; exposed for tests.</summary>
    internal async Task SampleAsync(CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(SampleSql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        long pending = 0, inFlight = 0;
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var count = reader.GetInt64(1);
            if (reader.GetString(0) == "Pending")
            {
                pending = count;
            }
            else
            {
                inFlight = count;
            }
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var oldestPending = reader.IsDBNull(0) ? (DateTimeOffset?)null : reader.GetFieldValue<DateTimeOffset>(0);

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var unpublished = reader.GetInt64(0);
        var oldestUnpublished = reader.IsDBNull(1) ? (DateTimeOffset?)null : reader.GetFieldValue<DateTimeOffset>(1);

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        DateTimeOffset? blockedUntil = null;
        long callsToday = 0;
        if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            blockedUntil = reader.IsDBNull(0) ? null : reader.GetFieldValue<DateTimeOffset>(0);
            var day = reader.GetFieldValue<DateOnly>(1);
            callsToday = day == DateOnly.FromDateTime(now.UtcDateTime) ? reader.GetInt32(2) : 0;
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var groups = await reader.ReadAllAsync(
            row => new GroupBacklog(row.GetString(0), EmailMask.Mask(row.GetString(1)), row.GetInt64(2)), cancellationToken).ConfigureAwait(false);

        snapshot = new Snapshot(
            now,
            pending,
            inFlight,
            AgeSeconds(now, oldestPending),
            unpublished,
            AgeSeconds(now, oldestUnpublished),
            blockedUntil,
            callsToday,
            groups);

        // Read in the same refresh, after the figures above are kept (the lanes' own gauges keep their last values on failure).
        if (services.GetService<PriorityLaneGauges>() is { } lanes)
        {
            await lanes.SampleAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.GaugeRefreshInterval, timeProvider);
        do
        {
            try
            {
                await SampleAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException && !stoppingToken.IsCancellationRequested)
            {
                // Postgres down shows in readiness; the gauges keep their last values and the sample age grows.
                LogSampleFailed(logger, ex.GetType().Name, ex.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    private static double AgeSeconds(DateTimeOffset now, DateTimeOffset? since) =>
        since is { } value ? Math.Max(0, (now - value).TotalSeconds) : 0;

    private IEnumerable<Measurement<double>> Observe(Func<Snapshot, double> value) =>
        snapshot is { } s ? [new Measurement<double>(value(s))] : [];

    private IEnumerable<Measurement<long>> ObserveBacklog() =>
        snapshot is { } s
            ? [new Measurement<long>(s.Pending, new KeyValuePair<string, object?>("state", "Pending")),
               new Measurement<long>(s.InFlight, new KeyValuePair<string, object?>("state", "InFlight"))]
            : [];

    private IEnumerable<Measurement<double>> ObserveBlockedRemaining()
    {
        if (snapshot is not { } s)
        {
            return [];
        }

        var now = timeProvider.GetUtcNow();
        var byRetryAfter = s.BlockedUntil is { } until ? Math.Max(0, (until - now).TotalSeconds) : 0;
        var byDailyLimit = 0.0;
        if (DailyCallLimit() is { } limit && s.CallsToday >= limit && DateOnly.FromDateTime(s.SampledAt.UtcDateTime) == DateOnly.FromDateTime(now.UtcDateTime))
        {
            var midnight = new DateTimeOffset(now.UtcDateTime.Date.AddDays(1), TimeSpan.Zero);
            byDailyLimit = (midnight - now).TotalSeconds;
        }

        return
        [
            new Measurement<double>(byRetryAfter, new KeyValuePair<string, object?>("reason", BlockedByTooManyRequests)),
            new Measurement<double>(byDailyLimit, new KeyValuePair<string, object?>("reason", BlockedByDailyLimit)),
        ];
    }

    private IEnumerable<Measurement<int>> ObserveDailyLimit() =>
        DailyCallLimit() is { } limit ? [new Measurement<int>(limit)] : [];

    private int? DailyCallLimit() => services.GetService<IOptions<GongOptions>>()?.Value.DailyCallLimit;

    private IEnumerable<Measurement<long>> ObserveGroups() =>
        snapshot is { } s
            ? s.Groups.Select(g => new Measurement<long>(g.Prospects,
                new KeyValuePair<string, object?>("flow_id", g.FlowId), new KeyValuePair<string, object?>("owner", g.Owner)))
            : [];

    private int ObservePaused() => services.GetService<IGongDispatchState>()?.Pause is null ? 0 : 1;

    private IEnumerable<Measurement<double>> ObserveHeartbeatAge() =>
        heartbeat.LastBeat is { } last ? [new Measurement<double>((timeProvider.GetUtcNow() - last).TotalSeconds)] : [];

    private IEnumerable<Measurement<double>> ObserveSampleAge() =>
        snapshot is { } s ? [new Measurement<double>((timeProvider.GetUtcNow() - s.SampledAt).TotalSeconds)] : [];

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading the database gauges failed ({errorType}: {error}); keeping the last values.")]
    private static partial void LogSampleFailed(ILogger logger, string errorType, string error);

    private sealed record Snapshot(
        DateTimeOffset SampledAt,
        long Pending,
        long InFlight,
        double OldestPendingAgeSeconds,
        long OutboxUnpublished,
        double OldestUnpublishedAgeSeconds,
        DateTimeOffset? BlockedUntil,
        long CallsToday,
        IReadOnlyList<GroupBacklog> Groups);

    private sealed record GroupBacklog(string FlowId, string Owner, long Prospects);
}
