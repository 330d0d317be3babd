using System.Net;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Worker.Host.Dispatch;
using Worker.Host.Operations;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.Operations;

[Collection(SerialCollection.Name)]
public sealed class HealthAndMetricsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Live_and_ready_answer_200_with_Postgres_and_RabbitMQ_up_and_list_every_check()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var worker = await RunningWorker.StartAsync(Settings(database.ConnectionString, vhost), output: output);

        var live = await worker.GetAsync(HealthEndpoints.LivePath);
        Assert.Equal(HttpStatusCode.OK, live.Status);
        Assert.Equal("Healthy", Json(live.Body).GetProperty("status").GetString());

        // The bus connects in the background after start: poll until it reports in.
        var ready = await RunningWorker.EventuallyAsync(() => worker.GetAsync(HealthEndpoints.ReadyPath), r => r.Status == HttpStatusCode.OK, Patience);
        Assert.True(ready.Status == HttpStatusCode.OK, ready.Body);
        var checks = Checks(ready.Body);
        Assert.Equal("Healthy", checks["postgres"]);
        Assert.Equal("Healthy", checks["masstransit-bus"]);
        Assert.Equal("Healthy", checks["dispatch"]);
        Assert.Equal("Healthy", checks["gong"]);
        Assert.Equal("Healthy", checks["shutdown"]);
    }

    [Fact]
    public async Task Live_turns_503_when_RabbitMQ_refuses_the_login_so_the_container_is_restarted()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var settings = Settings(database.ConnectionString, vhost)
            .Where(kv => kv.Key != "RabbitMq:Password")
            .Append(new("RabbitMq:Password", "not-the-password"));
        await using var worker = await RunningWorker.StartAsync(settings, output: output);

        // MassTransit does not retry ACCESS_REFUSED: without this check the pod would stay alive and never consume.
        var live = await RunningWorker.EventuallyAsync(() => worker.GetAsync(HealthEndpoints.LivePath), r => r.Status == HttpStatusCode.ServiceUnavailable, Patience);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, live.Status);
        Assert.Equal("Unhealthy", Checks(live.Body)["bus-start"]);
        Assert.DoesNotContain("not-the-password", live.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ready_is_503_when_Postgres_is_unreachable_while_live_stays_200_and_no_secret_is_logged()
    {
        var services = await TestServices.GetAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        const string canary = "canary-secret-7f3a9c";
        var unreachable = $"Host=127.0.0.1;Port={RunningWorker.ClosedPort()};Database=worker;Username=worker;Password={canary};Timeout=2";
        var settings = Settings(unreachable, vhost).Concat(
        [
            new("Gong:AccessKey", canary + "-key"),
            new("Gong:AccessKeySecret", canary + "-secret"),
            new("Operations:GaugeRefreshInterval", "00:00:01"),
        ]);
        await using var worker = await RunningWorker.StartAsync(settings, output: output);

        var ready = await worker.GetAsync(HealthEndpoints.ReadyPath);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.Status);
        Assert.Equal("Unhealthy", Json(ready.Body).GetProperty("status").GetString());
        Assert.Equal("Unhealthy", Checks(ready.Body)["postgres"]);
        Assert.DoesNotContain(canary, ready.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await worker.GetAsync(HealthEndpoints.LivePath)).Status);

        // The gauge sampler fails too and logs it; whatever is logged must not carry a password or key.
        await RunningWorker.EventuallyAsync(
            () => Task.FromResult(worker.Logs.Lines.Any(l => l.Contains("database gauges failed", StringComparison.Ordinal))),
            found => found,
            Patience);
        Assert.Contains(worker.Logs.Lines, l => l.Contains("database gauges failed", StringComparison.Ordinal));
        Assert.DoesNotContain(worker.Logs.Lines, l => l.Contains(canary, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_Gong_credentials_pause_keeps_ready_at_200_but_shows_Degraded_with_the_reason()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var pause = new GongPause("Access key is not valid", DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddMinutes(1));
        await using var worker = await RunningWorker.StartAsync(
            Settings(database.ConnectionString, vhost),
            s => s.AddSingleton<IGongDispatchState>(new PausedGong(pause)), output: output);

        var ready = await RunningWorker.EventuallyAsync(() => worker.GetAsync(HealthEndpoints.ReadyPath), r => r.Status == HttpStatusCode.OK, Patience);
        Assert.Equal(HttpStatusCode.OK, ready.Status);
        var body = Json(ready.Body);
        Assert.Equal("Degraded", body.GetProperty("status").GetString());
        var gong = body.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "gong");
        Assert.Equal("Degraded", gong.GetProperty("status").GetString());
        Assert.Contains("Access key is not valid", gong.GetProperty("description").GetString(), StringComparison.Ordinal);

        var metrics = await worker.GetAsync(HealthEndpoints.MetricsPath);
        Assert.Matches(@"(?m)^flow_assignment_gong_paused\{[^}]*\} 1$", metrics.Body);
    }

    [Fact]
    public async Task Metrics_export_the_worker_meter_and_the_database_gauges_in_Prometheus_format()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var now = DateTimeOffset.UtcNow;

        // Not due for a day: a dispatcher running in this host leaves them where they are while the gauges count them.
        await SeedNotDueAsync(database, "metrics-1", now.AddMinutes(-5),
            Prospect("p1", ProspectAssignmentStatus.Pending, now.AddMinutes(-5)),
            Prospect("p2", ProspectAssignmentStatus.Pending, now.AddMinutes(-1)),
            Prospect("p3", ProspectAssignmentStatus.InFlight, now.AddMinutes(-1)));

        await using var worker = await RunningWorker.StartAsync(
            Settings(database.ConnectionString, vhost).Append(new("Operations:GaugeRefreshInterval", "00:00:01")), output: output);
        var metrics = worker.App.Services.GetRequiredService<WorkerMetrics>();
        metrics.MessageIngested("accepted");
        metrics.GongCall("assign", "Answered", 200, TimeSpan.FromMilliseconds(350));
        metrics.BatchFill(200);

        var scrape = await RunningWorker.EventuallyAsync(
            () => worker.GetAsync(HealthEndpoints.MetricsPath),
            // ASP.NET Core records a request's duration after its response: the first scrape cannot show its own, so
            // wait for one that follows a recorded request as well as the first gauge sample.
            r => r.Body.Contains("flow_assignment_backlog_prospects", StringComparison.Ordinal)
                 && r.Body.Contains("http_server_request_duration_seconds", StringComparison.Ordinal),
            Patience);
        Assert.Equal(HttpStatusCode.OK, scrape.Status);
        var text = scrape.Body;
        Assert.Matches(@"(?m)^flow_assignment_backlog_prospects\{[^}]*state=""Pending""[^}]*\} 2$", text);
        Assert.Matches(@"(?m)^flow_assignment_backlog_prospects\{[^}]*state=""InFlight""[^}]*\} 1$", text);
        var oldest = System.Text.RegularExpressions.Regex.Match(text, @"(?m)^flow_assignment_backlog_oldest_pending_age_seconds\{[^}]*\} ([0-9.]+)$");
        Assert.True(oldest.Success, text);
        Assert.InRange(double.Parse(oldest.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 290, 600);
        Assert.Matches(@"(?m)^flow_assignment_outbox_unpublished\{[^}]*\} 0$", text);
        Assert.Matches(@"(?m)^flow_assignment_rate_gate_blocked_remaining_seconds\{[^}]*\} 0$", text);
        Assert.Matches(@"(?m)^flow_assignment_messages_ingested_total\{[^}]*result=""accepted""[^}]*\} 1$", text);
        Assert.Matches(@"(?m)^flow_assignment_gong_calls_total\{[^}]*http_response_status_code=""200""[^}]*\} 1$", text);
        Assert.Contains("flow_assignment_batch_fill_bucket", text, StringComparison.Ordinal);
        Assert.Contains("http_server_request_duration_seconds", text, StringComparison.Ordinal);
        Assert.Contains("dotnet_gc_collections_total", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_have_explicit_buckets_bounded_error_codes_quota_gauges_and_error_queue_inflow()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var now = DateTimeOffset.UtcNow;
        await SeedNotDueAsync(database, "metrics-2", now.AddMinutes(-1),
            Prospect("g1", ProspectAssignmentStatus.Pending, now.AddMinutes(-1), "222", "second.owner@example.org"),
            Prospect("g2", ProspectAssignmentStatus.Pending, now.AddMinutes(-1), "222", "second.owner@example.org"));
        await using (var db = database.CreateDbContext())
        {
            // Today's budget spent: the gate is closed until 00:00 UTC even though no 429 blocks it.
            await db.RateGates.Where(g => g.Id == 1).ExecuteUpdateAsync(g => g
                .SetProperty(x => x.BlockedUntil, (DateTimeOffset?)null)
                .SetProperty(x => x.Day, DateOnly.FromDateTime(now.UtcDateTime))
                .SetProperty(x => x.DayCallCount, 5000));
        }

        await using var worker = await RunningWorker.StartAsync(Settings(database.ConnectionString, vhost).Concat(
        [
            new("Operations:GaugeRefreshInterval", "00:00:01"),
            new("Gong:DailyCallLimit", "5000"),
        ]), output: output);
        var metrics = worker.App.Services.GetRequiredService<WorkerMetrics>();
        metrics.GongCall("assign", "Answered", 200, TimeSpan.FromMilliseconds(350));
        metrics.BatchFill(199);
        metrics.RateGateWait(TimeSpan.FromMilliseconds(5));
        metrics.OutboxPublished(true, TimeSpan.FromSeconds(2));
        metrics.ProspectOutcomes("Failed", "FlowNotFound", 2);
        metrics.ProspectOutcomes("NotAssigned", "SomeCodeGongAddsLater", 1);
        metrics.ProspectOutcomes("Assigned", null, 3);

        // Two messages the worker must send to the error queue: a body that is not JSON, and one without a requestId.
        await RunningWorker.EventuallyAsync(() => worker.GetAsync(HealthEndpoints.ReadyPath), r => r.Status == HttpStatusCode.OK, Patience);
        await PublishRawAsync(vhost, "this is not json");
        await PublishRawAsync(vhost, """{"flowId":"1","flowInstanceOwnerEmail":"a@example.com","crmProspectIds":["x"]}""");

        var scrape = await RunningWorker.EventuallyAsync(
            () => worker.GetAsync(HealthEndpoints.MetricsPath),
            r => r.Body.Contains("flow_assignment_backlog_group_prospects", StringComparison.Ordinal)
                && System.Text.RegularExpressions.Regex.IsMatch(r.Body, @"(?m)^flow_assignment_messages_moved_to_error_queue_total\{[^}]*reason=""unusable_request_id""[^}]*\} 1$")
                && System.Text.RegularExpressions.Regex.IsMatch(r.Body, @"(?m)^flow_assignment_messages_moved_to_error_queue_total\{[^}]*reason=""unreadable""[^}]*\} 1$"),
            Patience);
        var text = scrape.Body;

        // Explicit buckets (InstrumentAdvice), not the SDK's default 0–10,000 bounds.
        Assert.Matches(@"(?m)^flow_assignment_gong_call_duration_seconds_bucket\{[^}]*le=""0.5""[^}]*\} 1$", text);
        Assert.Matches(@"(?m)^flow_assignment_gong_call_duration_seconds_bucket\{[^}]*le=""120""[^}]*\} 1$", text);
        Assert.Matches(@"(?m)^flow_assignment_gong_call_duration_seconds_bucket\{[^}]*le=""0.25""[^}]*\} 0$", text);
        Assert.Matches(@"(?m)^flow_assignment_batch_fill_bucket\{[^}]*le=""199""[^}]*\} 1$", text);
        Assert.Matches(@"(?m)^flow_assignment_batch_fill_bucket\{[^}]*le=""190""[^}]*\} 0$", text);
        Assert.Matches(@"(?m)^flow_assignment_rate_gate_wait_seconds_bucket\{[^}]*le=""0.01""[^}]*\} 1$", text);
        Assert.Matches(@"(?m)^flow_assignment_outbox_lag_seconds_bucket\{[^}]*le=""2.5""[^}]*\} 1$", text);
        Assert.Matches(@"(?m)^flow_assignment_outbox_lag_seconds_bucket\{[^}]*le=""600""[^}]*\} 1$", text);
        Assert.DoesNotMatch(@"(?m)^flow_assignment_[a-z_]+_bucket\{[^}]*le=""10000""", text);

        // error_code from a bounded set; none on an outcome without one.
        Assert.Matches(@"(?m)^flow_assignment_prospect_outcomes_total\{[^}]*error_code=""FlowNotFound""[^}]*status=""Failed""[^}]*\} 2$", text);
        Assert.Matches(@"(?m)^flow_assignment_prospect_outcomes_total\{[^}]*error_code=""other""[^}]*status=""NotAssigned""[^}]*\} 1$", text);
        Assert.Matches(@"(?m)^flow_assignment_prospect_outcomes_total\{(?![^}]*error_code)[^}]*status=""Assigned""[^}]*\} 3$", text);
        Assert.DoesNotContain("SomeCodeGongAddsLater", text, StringComparison.Ordinal);

        // Quota: used and limit as two gauges, and the spent budget closes the gate until midnight with its reason.
        Assert.Matches(@"(?m)^flow_assignment_rate_gate_calls_today\{[^}]*\} 5000$", text);
        Assert.Matches(@"(?m)^flow_assignment_rate_gate_daily_limit\{[^}]*\} 5000$", text);
        Assert.Matches(@"(?m)^flow_assignment_rate_gate_blocked_remaining_seconds\{[^}]*reason=""too_many_requests""[^}]*\} 0$", text);
        var untilMidnight = System.Text.RegularExpressions.Regex.Match(text, @"(?m)^flow_assignment_rate_gate_blocked_remaining_seconds\{[^}]*reason=""daily_limit""[^}]*\} ([0-9.E+]+)$");
        Assert.True(untilMidnight.Success, text);
        var expected = (now.UtcDateTime.Date.AddDays(1) - DateTime.UtcNow).TotalSeconds;
        Assert.InRange(double.Parse(untilMidnight.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), expected - 60, expected + 1);

        // Backlog per group, owner masked; error-queue inflow by reason.
        Assert.Matches(@"(?m)^flow_assignment_backlog_group_prospects\{[^}]*flow_id=""222""[^}]*owner=""s\*\*\*@example.org""[^}]*\} 2$", text);
        Assert.DoesNotContain("second.owner@example.org", text, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^flow_assignment_messages_moved_to_error_queue_total\{[^}]*reason=""unreadable""[^}]*\} 1$", text);
        Assert.Matches(@"(?m)^flow_assignment_messages_moved_to_error_queue_total\{[^}]*reason=""unusable_request_id""[^}]*\} 1$", text);

        // The series the alerts read with increase() exist at 0 from the start, so their first increment alerts.
        Assert.Matches(@"(?m)^flow_assignment_messages_moved_to_error_queue_total\{[^}]*reason=""request_id_conflict""[^}]*\} 0$", text);
        Assert.Matches(@"(?m)^flow_assignment_prospect_outcomes_total\{[^}]*error_code=""RetriesExhausted""[^}]*status=""Failed""[^}]*\} 0$", text);
        Assert.Matches(@"(?m)^flow_assignment_gong_calls_total\{[^}]*http_response_status_code=""429""[^}]*\} 0$", text);

        // The exporter's naming rules hold for every family, and each is listed in the README's metrics table.
        var readme = await File.ReadAllTextAsync(RepositoryRoot.Combine("README.md"));
        var families = System.Text.RegularExpressions.Regex.Matches(text, @"(?m)^# TYPE (flow_assignment_[a-z_]+) ([a-z]+)$")
            .Select(m => (Name: m.Groups[1].Value, Type: m.Groups[2].Value)).ToList();
        Assert.True(families.Count >= 20, text);
        foreach (var (name, type) in families)
        {
            Assert.True(type == "counter" == name.EndsWith("_total", StringComparison.Ordinal), $"{name} ({type}): only counters end in _total");
            var timeLike = System.Text.RegularExpressions.Regex.IsMatch(name, "_(duration|age|wait|lag|remaining|margin)(_|$)");
            Assert.True(timeLike == name.EndsWith("_seconds", StringComparison.Ordinal), $"{name}: a time is in seconds, and only a time");
            Assert.DoesNotMatch("_(ms|milliseconds|minutes|seconds_seconds|total_total)(_|$)", name);
            Assert.True(readme.Contains($"`{name}`", StringComparison.Ordinal), $"{name} is not listed in README.md");
        }
    }

    /// <summary>Postgres, the vhost and a Gong client pointed at a closed loopback port (the Gong client needs credentials to start).</summary>
    internal static IEnumerable<KeyValuePair<string, string?>> Settings(string connectionString, TestVirtualHost vhost) =>
        vhost.ToWorkerConfiguration().Prepend(new("ConnectionStrings:Postgres", connectionString)).Concat(
        [
            new("Gong:BaseUrl", $"http://127.0.0.1:{RunningWorker.ClosedPort()}"),
            new("Gong:AccessKey", "test-access-key"),
            new("Gong:AccessKeySecret", "test-access-key-secret"),
        ]);

    internal static ProspectAssignment Prospect(string id, ProspectAssignmentStatus status, DateTimeOffset createdAt, string flowId = "111", string owner = "owner@example.com") => new()
    {
        CrmProspectId = id, FlowId = flowId, OwnerEmail = owner, Status = status,
        AvailableAt = createdAt, CreatedAt = createdAt, UpdatedAt = createdAt,
    };

    /// <summary>Stores one request with <paramref name="prospects"/> (flow and owner of the first), none due for a day.</summary>
    private static async Task SeedNotDueAsync(TestDatabase database, string requestId, DateTimeOffset receivedAt, params ProspectAssignment[] prospects)
    {
        foreach (var prospect in prospects)
        {
            prospect.AvailableAt = receivedAt.AddDays(1);
        }

        await using var db = database.CreateDbContext();
        db.AssignmentRequests.Add(new AssignmentRequest
        {
            RequestId = requestId, FlowId = prospects[0].FlowId, OwnerEmail = prospects[0].OwnerEmail, OwnerEmailNormalized = prospects[0].OwnerEmail,
            ContentHash = new string('c', 64), ProspectCount = prospects.Length,
            PendingCount = prospects.Count(p => p.Status is ProspectAssignmentStatus.Pending or ProspectAssignmentStatus.InFlight),
            ReceivedAt = receivedAt, Prospects = [.. prospects],
        });
        await db.SaveChangesAsync();
    }

    private static async Task PublishRawAsync(TestVirtualHost vhost, string body)
    {
        var factory = new RabbitMQ.Client.ConnectionFactory { Uri = vhost.AmqpUri };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync(new RabbitMQ.Client.CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        var properties = new RabbitMQ.Client.BasicProperties { ContentType = "application/json", DeliveryMode = RabbitMQ.Client.DeliveryModes.Persistent };
        await channel.BasicPublishAsync("Worker.Contracts:AssignProspectsToFlow", string.Empty, mandatory: true, properties, System.Text.Encoding.UTF8.GetBytes(body));
    }

    private static JsonElement Json(string body) => JsonDocument.Parse(body).RootElement.Clone();

    private static Dictionary<string, string> Checks(string body) =>
        Json(body).GetProperty("checks").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("status").GetString()!);

    private sealed class PausedGong(GongPause pause) : IGongDispatchState
    {
        public GongPause? Pause => pause;

        public Task<DateTimeOffset?> GetBlockedUntilAsync(CancellationToken cancellationToken) => Task.FromResult<DateTimeOffset?>(null);
    }
}
