using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Worker.Host.Gong;
using Worker.Host.Operations;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.Operations;

[Collection(SerialCollection.Name)]
public sealed class HealthAndMetricsTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Live_and_ready_answer_200_with_Postgres_and_RabbitMQ_up_and_list_every_check()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var worker = await RunningWorker.StartAsync(Settings(database.ConnectionString, vhost));

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
        await using var worker = await RunningWorker.StartAsync(settings);

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
        await using var worker = await RunningWorker.StartAsync(settings);

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
            s => s.AddSingleton<IGongDispatchState>(new PausedGong(pause)));

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
        await using (var db = database.CreateDbContext())
        {
            db.AssignmentRequests.Add(new AssignmentRequest
            {
                RequestId = "metrics-1", FlowId = "111", OwnerEmail = "owner@example.com", OwnerEmailNormalized = "owner@example.com",
                ContentHash = new string('c', 64), ProspectCount = 3, PendingCount = 3, ReceivedAt = now.AddMinutes(-5),
                Prospects =
                [
                    Prospect("p1", ProspectAssignmentStatus.Pending, now.AddMinutes(-5)),
                    Prospect("p2", ProspectAssignmentStatus.Pending, now.AddMinutes(-1)),
                    Prospect("p3", ProspectAssignmentStatus.InFlight, now.AddMinutes(-1)),
                ],
            });

            // Not due for a day: a dispatcher running in this host leaves them where they are while the gauges count them.
            foreach (var prospect in db.ChangeTracker.Entries<ProspectAssignment>())
            {
                prospect.Entity.AvailableAt = now.AddDays(1);
            }

            await db.SaveChangesAsync();
        }

        await using var worker = await RunningWorker.StartAsync(
            Settings(database.ConnectionString, vhost).Append(new("Operations:GaugeRefreshInterval", "00:00:01")));
        var metrics = worker.App.Services.GetRequiredService<WorkerMetrics>();
        metrics.MessageIngested("accepted");
        metrics.GongCall("assign", "Answered", 200, TimeSpan.FromMilliseconds(350));
        metrics.BatchFill(200);

        var scrape = await RunningWorker.EventuallyAsync(
            () => worker.GetAsync(HealthEndpoints.MetricsPath),
            r => r.Body.Contains("flow_assignment_backlog_prospects", StringComparison.Ordinal),
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
