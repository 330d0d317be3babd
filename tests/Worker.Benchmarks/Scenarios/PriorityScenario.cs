using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using RabbitMQ.Client;
using Worker.Testing;
using static Worker.Benchmarks.Scenarios.BenchSupport;

namespace Worker.Benchmarks.Scenarios;

/// <summary>
/// Priority lanes (issue 15): a bulk campaign (<c>--priority-prospects</c>, default 50,000, over
/// <c>--priority-groups</c>, default 50, groups) is stored, then drained at Gong's real 3 calls/s (simulator
/// 200–800 ms per call) while <c>--priority-samples</c> (20) hot-lead requests of 3 prospects, each for a group of the
/// backlog, are published one every <c>--priority-interval-ms</c> (1,500). Time from publish to the consumed
/// <c>FlowAssignmentCompleted</c>, p50 and p99, once with the campaign as <c>bulk</c> and the leads as <c>high</c>, and
/// once with neither carrying a priority (what every publisher got before lanes existed). Each run then drains the
/// campaign to the end: assign calls against the minimum Σ⌈n_group/200⌉ and calls/s at Gong's door.
/// </summary>
internal sealed class PriorityScenario : IScenario
{
    public string Name => "priority";

    public string Description => "hot-lead requests published during a large bulk drain at 3 calls/s: time to event, with and without priority";

    public async Task<IReadOnlyList<ResultRow>> RunAsync(ScenarioContext context, CancellationToken cancellationToken)
    {
        var prospects = context.GetInt("priority-prospects", 50_000);
        var groups = context.GetInt("priority-groups", 50);
        var samples = context.GetInt("priority-samples", 20);
        var interval = TimeSpan.FromMilliseconds(context.GetInt("priority-interval-ms", 1_500));
        var rows = new List<ResultRow>();
        foreach (var withPriority in new[] { true, false })
        {
            rows.AddRange(await RunOnceAsync(context, withPriority, prospects, groups, samples, interval, cancellationToken));
        }

        return rows;
    }

    private async Task<IReadOnlyList<ResultRow>> RunOnceAsync(
        ScenarioContext context, bool withPriority, int prospects, int groups, int samples, TimeSpan interval, CancellationToken cancellationToken)
    {
        var mode = withPriority ? "campaign bulk, leads high" : "no priority";
        await using var database = await context.Services.CreateDatabaseAsync();
        await using var vhost = await context.Services.CreateVirtualHostAsync();
        await using var simulator = await StartSimulatorAsync(3);
        await using var worker = await StartWorkerAsync(database, vhost, GongSettings(simulator, 3).Select(kv => $"--{kv.Key}={kv.Value}"));

        var waiting = new ConcurrentDictionary<string, TaskCompletionSource>(StringComparer.Ordinal);
        var bus = await StartEventListenerAsync(vhost, "bench-priority-events", waiting);
        try
        {
            // The campaign: one request per group (split at 10,000 ids, the per-request limit).
            var perGroup = prospects / groups;
            var bodies = new List<byte[]>();
            for (var g = 0; g < groups; g++)
            {
                foreach (var chunk in Enumerable.Range(0, perGroup).Chunk(10_000))
                {
                    bodies.Add(Body($"campaign-{g:D3}-{chunk[0]:D6}", Flow(g), chunk.Select(i => $"0035gC{g:D3}{i:D6}"), withPriority ? "bulk" : null));
                }
            }

            await PublishAsync(vhost, bodies);
            await Poll.UntilAsync(async () => await ScalarAsync<long>(database, "SELECT count(*) FROM prospect_assignments") >= perGroup * groups,
                TimeSpan.FromMinutes(10), "the campaign stored");

            await using var connection = await new ConnectionFactory { Uri = vhost.AmqpUri }.CreateConnectionAsync(cancellationToken);
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            var properties = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent };
            var pending = new List<(TaskCompletionSource Done, Stopwatch Clock)>();
            for (var i = 0; i < samples; i++)
            {
                var requestId = $"hot-lead-{i:D4}";
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                waiting[requestId] = done;
                var body = Body(requestId, Flow(i * 7 % groups), Enumerable.Range(0, 3).Select(p => $"00Q5gH{i:D4}{p}"), withPriority ? "high" : null);
                var clock = Stopwatch.StartNew();
                await channel.BasicPublishAsync(CommandExchange, string.Empty, mandatory: false, properties, body, cancellationToken);
                var stop = clock;
                _ = done.Task.ContinueWith(_ => stop.Stop(), TaskScheduler.Default);
                pending.Add((done, clock));
                await Task.Delay(interval, cancellationToken);
            }

            await Task.WhenAll(pending.Select(p => p.Done.Task)).WaitAsync(TimeSpan.FromMinutes(30), cancellationToken);
            var latencies = pending.Select(p => p.Clock.Elapsed.TotalMilliseconds).Order().ToList();

            await Poll.UntilAsync(async () => await ScalarAsync<long>(database, "SELECT count(*) FROM prospect_assignments WHERE status IN ('Pending', 'InFlight')") == 0,
                TimeSpan.FromMinutes(60), "the campaign drained");
            var calls = await ScalarAsync<long>(database, "SELECT count(*) FROM gong_calls WHERE endpoint = 'assign'");
            var minimum = await ScalarAsync<long>(database,
                "SELECT sum(ceil(n / 200.0))::bigint FROM (SELECT count(DISTINCT crm_prospect_id) AS n FROM prospect_assignments GROUP BY flow_id, owner_email) g");
            var arrivals = simulator.State.GetCalls().Where(c => c.Endpoint == Gong.Simulator.SimulatorEndpoints.Assign).Select(c => c.Time).Order().ToList();
            var rate = arrivals.Count > 1 ? (arrivals.Count - 1) / (arrivals[^1] - arrivals[0]).TotalSeconds : 0;
            Console.Error.WriteLine($"priority ({mode}): p50 {Percentile(latencies, 50):F0} ms, p99 {Percentile(latencies, 99):F0} ms, calls {calls} / {minimum}, {rate:F2} calls/s");

            var workload = $"{N0(perGroup * groups)} prospects in {groups} groups; {samples} requests of 3, one per {interval.TotalMilliseconds:F0} ms; Gong 3 calls/s, sim 200-800 ms";
            return
            [
                new(Name, $"{mode}: publish -> event p50", $"{N0(Percentile(latencies, 50))} ms", workload),
                new(Name, $"{mode}: publish -> event p99", $"{N0(Percentile(latencies, 99))} ms", $"min {N0(latencies[0])} ms, max {N0(latencies[^1])} ms"),
                new(Name, $"{mode}: assign calls / minimum", $"{N0(calls)} / {N0(minimum)}", "minimum = sum over groups of ceil(n/200)"),
                new(Name, $"{mode}: calls/s at Gong's door", F(rate, 2), "(arrivals - 1) / first to last arrival; limit 3"),
            ];
        }
        finally
        {
            await bus.StopAsync(CancellationToken.None);
        }
    }

    private static string Flow(int group) => $"1695493301224{group:D6}";

    private static byte[] Body(string requestId, string flowId, IEnumerable<string> ids, string? priority) =>
        priority is null
            ? PlainJson(requestId, flowId, "campaign.owner@example.com", ids)
            : JsonSerializer.SerializeToUtf8Bytes(new { requestId, flowId, flowInstanceOwnerEmail = "campaign.owner@example.com", crmProspectIds = ids.ToArray(), priority });
}
