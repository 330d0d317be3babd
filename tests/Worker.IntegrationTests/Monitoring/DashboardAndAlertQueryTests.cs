using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using RabbitMQ.Client;
using Worker.IntegrationTests.Dispatch;
using Worker.IntegrationTests.EndToEnd;
using Worker.Persistence.Entities;
using Worker.Testing;
using Xunit.Abstractions;
using YamlDotNet.RepresentationModel;

namespace Worker.IntegrationTests.Monitoring;

/// <summary>
/// Issue 12: a real Prometheus scrapes a real worker process (<c>dotnet Worker.Host.dll run</c>) draining a workload
/// against the Gong simulator, with the alert rules loaded. Every panel query of the Grafana dashboard (variables
/// filled in) parses and returns series; every alert expression parses, evaluates without error, and each metric
/// selector in it (without the threshold) returns series; the alerts the workload provokes fire.
/// </summary>
public sealed partial class DashboardAndAlertQueryTests(ITestOutputHelper output)
{
    private const string MissingFlow = "404000000000000404";

    [Fact]
    public async Task Every_panel_query_and_alert_selector_returns_series_from_a_worker_draining_against_the_simulator()
    {
        var stopwatch = Stopwatch.StartNew();
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();

        // One 429 and one 500 after commit (reconciled) scripted; a flow that answers 404 (Failed, FlowNotFound);
        // blocked- ids come back NotAssigned (InvalidState).
        var options = new SimulatorOptions { MissingFlowIds = [MissingFlow] };
        options.RateLimit.RequestsPerSecond = 20;
        options.Faults.Script =
        [
            new ScriptedFault { Kind = FaultKind.RateLimited, RetryAfterSeconds = 1 },
            new ScriptedFault { Kind = FaultKind.ErrorAfterCommit, Status = 500 },
        ];
        await using var simulator = await GongSimulatorApp.StartAsync(options, "http://127.0.0.1:0");

        // A group that is not due for a day, so the per-group backlog series exists when the queries run.
        await SeedWaitingGroupAsync(database);

        var environment = WorkerProcess.SimulatorEnvironment(database.ConnectionString, vhost, simulator.BaseUrl, 20);
        environment["Relay__MaxRetryDelay"] = "00:00:01";
        environment["Dispatch__RetryDelay"] = "00:00:00.200";

        // The 500 after commit is looked up once that call can no longer commit: the simulator answers in milliseconds.
        environment["Gong__ServerCommitBound"] = "00:00:02";
        environment["Operations__GaugeRefreshInterval"] = "00:00:01";
        environment["Logging__LogLevel__Default"] = "Warning";

        await using var worker = WorkerProcess.Start(environment);
        await worker.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
        await using var prometheus = await PrometheusServer.StartAsync(worker.Http.BaseAddress!);

        // Prometheus has the alerted counters at 0 before the workload moves them (a series first seen above 0 has no increase).
        await Poll.UntilAsync(
            async () => (await prometheus.QueryAsync("""flow_assignment_messages_moved_to_error_queue_total{reason="unreadable"} == 0""")).Series.Count > 0,
            TimeSpan.FromSeconds(30),
            "Prometheus scraped the error-queue counter at 0");
        var requestIds = await PublishWorkloadAsync(vhost);
        output.WriteLine($"worker ready, Prometheus up and the workload published after {stopwatch.Elapsed.TotalSeconds:0.0} s");
        await Poll.UntilAsync(
            async () => await CompletedAsync(database, requestIds),
            TimeSpan.FromSeconds(60),
            "every request of the workload completed and its event published");
        output.WriteLine($"workload drained after {stopwatch.Elapsed.TotalSeconds:0.0} s");

        // Enough scrapes of every counter the drain created for the rate() windows below.
        await Poll.UntilAsync(
            async () => (await prometheus.QueryAsync(
                    """min(count_over_time({__name__=~"flow_assignment_(prospect_outcomes_total|outbox_lag_seconds_count|messages_moved_to_error_queue_total|gong_reconciliations_total)"}[1m])) >= 5""")).Series.Count > 0
                && (await prometheus.QueryAsync("""flow_assignment_gong_calls_total{http_response_status_code="429"}""")).Series.Count > 0,
            TimeSpan.FromSeconds(30),
            "five scrapes of the outcome, outbox, error-queue and reconciliation counters, and a 429 counted");

        // Series appear in Prometheus a scrape after the worker creates them: look again for up to 20 s before failing.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        var (failures, panels, alerts) = await CheckQueriesAsync(prometheus);
        while (failures.Count > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(1000);
            (failures, panels, alerts) = await CheckQueriesAsync(prometheus);
        }

        // What the workload provoked fires (these two have no `for`): Failed with FlowNotFound, an unreadable message.
        var firing = await FiringAlertsAsync(prometheus);
        foreach (var line in firing.Select(a => "alert " + a).Concat(failures))
        {
            output.WriteLine(line);
        }

        if (failures.Count > 0)
        {
            var scrape = await worker.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            output.WriteLine(string.Join(Environment.NewLine, scrape.Split('\n').Where(l => l.StartsWith("flow_assignment_", StringComparison.Ordinal) && !l.Contains("_bucket", StringComparison.Ordinal))));
            foreach (var diagnostic in new[] { "up", "scrape_samples_scraped", "scrape_duration_seconds", "count by (__name__) ({__name__=~\"flow_assignment_.*\"})" })
            {
                var (_, series, _) = await prometheus.QueryAsync(diagnostic);
                output.WriteLine($"{diagnostic}: {string.Join(", ", series.Select(e => e.ToString()))}");
            }

            output.WriteLine(prometheus.Tail());
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures) + Environment.NewLine + prometheus.Tail());
        Assert.Contains(firing, a => a.StartsWith("firing FlowAssignmentProspectsFailing", StringComparison.Ordinal) && a.Contains("error_code=FlowNotFound", StringComparison.Ordinal));
        Assert.Contains(firing, a => a.StartsWith("firing FlowAssignmentErrorQueueInflow", StringComparison.Ordinal) && a.Contains("reason=unreadable", StringComparison.Ordinal));
        Assert.DoesNotContain(firing, a => a.Contains("FlowAssignmentMetricsAbsent", StringComparison.Ordinal));
        output.WriteLine($"{panels} panels, {alerts} alerts checked; {stopwatch.Elapsed.TotalSeconds:0.0} s in all");

        // The contract holds under the faults: nothing assigned twice, nothing left open.
        var stats = await simulator.CreateClient().GetFromJsonAsync<JsonElement>("/_sim/stats");
        Assert.Equal(0, stats.GetProperty("duplicateOfApiAssignmentAttempts").GetInt32());
    }

    /// <summary>
    /// Every panel target (variables filled in: the flow as Grafana's label_values over the last 5 s gives it, and All)
    /// and every alert expression and selector, against the running Prometheus; the failures, the panel and alert counts.
    /// </summary>
    private static async Task<(List<string> Failures, int Panels, int Alerts)> CheckQueriesAsync(PrometheusServer prometheus)
    {
        // The flow variable: label_values as Grafana reads it must list flows; the panels are checked with All and
        // with a flow that has a backlog now (label_values also lists drained groups until the head block compacts).
        var failures = new List<string>();
        var flowIds = await prometheus.GetDataAsync("/api/v1/label/flow_id/values?match[]=flow_assignment_backlog_group_prospects");
        if (flowIds.GetArrayLength() == 0)
        {
            failures.Add("variable flow_id: label_values(flow_assignment_backlog_group_prospects, flow_id) is empty");
        }

        var current = (await prometheus.QueryAsync("group by (flow_id) (flow_assignment_backlog_group_prospects)")).Series;
        var flowId = current.Select(e => e.GetProperty("metric").GetProperty("flow_id").GetString()).FirstOrDefault();

        var panels = 0;
        using (var dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(RepositoryRoot.Combine("deploy", "monitoring", "grafana-dashboard.json"))))
        {
            foreach (var panel in dashboard.RootElement.GetProperty("panels").EnumerateArray())
            {
                panels++;
                foreach (var target in panel.GetProperty("targets").EnumerateArray())
                {
                    foreach (var value in new[] { ".*", Regex.Escape(flowId ?? "none") })
                    {
                        var expr = target.GetProperty("expr").GetString()!
                            .Replace("$__rate_interval", "20s", StringComparison.Ordinal)
                            .Replace("$__interval", "5s", StringComparison.Ordinal)
                            .Replace("$__range", "1m", StringComparison.Ordinal)
                            .Replace("$flow_id", value, StringComparison.Ordinal);
                        var (status, series, error) = await prometheus.QueryAsync(expr);
                        if (status != "success" || series.Count == 0)
                        {
                            failures.Add($"panel \"{panel.GetProperty("title").GetString()}\" {target.GetProperty("refId").GetString()}: {expr} -> {status} {error} ({series.Count} series)");
                        }
                    }
                }
            }
        }

        var alerts = AlertRules();
        foreach (var (name, expr) in alerts)
        {
            var (status, _, error) = await prometheus.QueryAsync(expr);
            if (status != "success")
            {
                failures.Add($"alert {name}: {expr} does not parse: {error}");
            }

            foreach (Match selector in Selector().Matches(expr))
            {
                var (selectorStatus, series, selectorError) = await prometheus.QueryAsync(selector.Value);
                if (selectorStatus != "success" || series.Count == 0)
                {
                    failures.Add($"alert {name}: selector {selector.Value} -> {selectorStatus} {selectorError} ({series.Count} series)");
                }
            }
        }

        // Prometheus evaluated every rule without error.
        var groups = await prometheus.GetDataAsync("/api/v1/rules");
        var evaluated = groups.GetProperty("groups").EnumerateArray().SelectMany(g => g.GetProperty("rules").EnumerateArray()).ToList();
        if (evaluated.Count != alerts.Count)
        {
            failures.Add($"Prometheus loaded {evaluated.Count} rules, the PrometheusRule has {alerts.Count}");
        }

        failures.AddRange(evaluated.Where(r => r.GetProperty("health").GetString() != "ok")
            .Select(r => $"rule {r.GetProperty("name").GetString()}: health {r.GetProperty("health").GetString()} {r.GetProperty("lastError")}"));

        return (failures, panels, alerts.Count);
    }

    /// <summary>The alerts Prometheus holds ("state name label=value …"), polled until the two expected ones fire or 15 s pass.</summary>
    private static async Task<List<string>> FiringAlertsAsync(PrometheusServer prometheus)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            var alerts = (await prometheus.GetDataAsync("/api/v1/alerts")).GetProperty("alerts").EnumerateArray()
                .Select(a => $"{a.GetProperty("state").GetString()} {a.GetProperty("labels").GetProperty("alertname").GetString()} " +
                             string.Join(" ", a.GetProperty("labels").EnumerateObject().Where(l => l.Name != "alertname").Select(l => $"{l.Name}={l.Value.GetString()}")))
                .Order(StringComparer.Ordinal).ToList();
            if (DateTime.UtcNow > deadline || (alerts.Any(a => a.StartsWith("firing FlowAssignmentProspectsFailing", StringComparison.Ordinal))
                && alerts.Any(a => a.StartsWith("firing FlowAssignmentErrorQueueInflow", StringComparison.Ordinal))))
            {
                return alerts;
            }

            await Task.Delay(250);
        }
    }

    private static async Task SeedWaitingGroupAsync(TestDatabase database)
    {
        var now = DateTimeOffset.UtcNow;
        await using var db = database.CreateDbContext();
        db.AssignmentRequests.Add(new AssignmentRequest
        {
            RequestId = "monitoring-waiting", FlowId = "700000000000000007", OwnerEmail = "waiting@example.com", OwnerEmailNormalized = "waiting@example.com",
            ContentHash = new string('f', 64), ProspectCount = 3, PendingCount = 3, ReceivedAt = now,
            Prospects = [.. Enumerable.Range(1, 3).Select(i => new ProspectAssignment
            {
                CrmProspectId = $"waiting-{i}", FlowId = "700000000000000007", OwnerEmail = "waiting@example.com",
                Status = ProspectAssignmentStatus.Pending, AvailableAt = now.AddDays(1), CreatedAt = now, UpdatedAt = now,
            })],
        });
        await db.SaveChangesAsync();
    }

    /// <summary>20 requests of 30 ids over three flows (one missing in Gong), some ids Gong declines, and one unreadable body.</summary>
    private static async Task<List<string>> PublishWorkloadAsync(TestVirtualHost vhost)
    {
        var factory = new ConnectionFactory { Uri = vhost.AmqpUri, ClientProvidedName = "monitoring-test-publisher" };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        var properties = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent };
        var ids = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            var requestId = $"monitoring-{i:D2}";
            var flow = i % 10 == 9 ? MissingFlow : $"16954933012235900{i % 2:D2}";
            var prospects = EndToEndWorld.Ids($"{requestId}-", 28).Concat([$"blocked-{requestId}-a", $"blocked-{requestId}-b"]);
            var body = EndToEndWorld.PlainJson(requestId, flow, $"owner{i % 2}@example.com", prospects);
            await channel.BasicPublishAsync(EndToEndWorld.CommandExchange, string.Empty, mandatory: true, properties, Encoding.UTF8.GetBytes(body));
            ids.Add(requestId);
        }

        await channel.BasicPublishAsync(EndToEndWorld.CommandExchange, string.Empty, mandatory: true, properties, Encoding.UTF8.GetBytes("{\"requestId\": 42, not json"));
        return ids;
    }

    private static async Task<bool> CompletedAsync(TestDatabase database, List<string> requestIds)
    {
        await using var db = database.CreateDbContext();
        var done = await db.AssignmentRequests.CountAsync(r => requestIds.Contains(r.RequestId) && r.Status != null);
        var unpublished = await db.OutboxMessages.CountAsync(o => o.PublishedAt == null);
        return done == requestIds.Count && unpublished == 0;
    }

    private static List<(string Name, string Expr)> AlertRules()
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(RepositoryRoot.Combine("deploy", "monitoring", "prometheusrule.yaml"))));
        var root = (YamlMappingNode)stream.Documents.Single().RootNode;
        var groups = (YamlSequenceNode)((YamlMappingNode)root.Children["spec"]).Children["groups"];
        return [.. groups.Children.Cast<YamlMappingNode>()
            .SelectMany(g => ((YamlSequenceNode)g.Children["rules"]).Children.Cast<YamlMappingNode>())
            .Select(r => (((YamlScalarNode)r.Children["alert"]).Value!, ((YamlScalarNode)r.Children["expr"]).Value!.Trim()))];
    }

    // A metric selector of the worker's series with its label matchers, e.g. flow_assignment_gong_calls_total{http_response_status_code="429"}.
    [GeneratedRegex(@"flow_assignment_[a-z_]+(\{[^}]*\})?")]
    private static partial Regex Selector();
}
