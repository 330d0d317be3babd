using System.Collections.Concurrent;
using System.Diagnostics;
using MassTransit;
using RabbitMQ.Client;
using Worker.Contracts;
using static Worker.Benchmarks.Scenarios.BenchSupport;

namespace Worker.Benchmarks.Scenarios;

/// <summary>
/// Idle latency: with an idle worker (real host wiring, simulator at Gong's 3 calls/s, 200–800 ms per call), one small
/// request is published at a time (plain JSON) and the time until its <c>FlowAssignmentCompleted</c> is consumed from the
/// event exchange is measured. Expected about <c>Dispatch:MaxBatchDelay</c> (2 s) plus one call.
/// Options: <c>--latency-samples=N</c> (30), <c>--latency-prospects=P</c> (5).
/// </summary>
internal sealed class LatencyScenario : IScenario
{
    public string Name => "latency";

    public string Description => "publish one small request to an idle worker -> FlowAssignmentCompleted consumed";

    public async Task<IReadOnlyList<ResultRow>> RunAsync(ScenarioContext context, CancellationToken cancellationToken)
    {
        var samples = context.GetInt("latency-samples", 30);
        var prospects = context.GetInt("latency-prospects", 5);

        await using var database = await context.Services.CreateDatabaseAsync();
        await using var vhost = await context.Services.CreateVirtualHostAsync();
        await using var simulator = await StartSimulatorAsync(3);
        await using var worker = await StartWorkerAsync(database, vhost, GongSettings(simulator, 3).Select(kv => $"--{kv.Key}={kv.Value}"));

        var waiting = new ConcurrentDictionary<string, TaskCompletionSource>(StringComparer.Ordinal);
        var bus = await StartEventListenerAsync(vhost, "bench-latency-events", waiting);
        try
        {
            await using var connection = await new ConnectionFactory { Uri = vhost.AmqpUri }.CreateConnectionAsync(cancellationToken);
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            var properties = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent };
            var latencies = new List<double>();
            for (var i = 0; i < samples; i++)
            {
                var requestId = $"latency-{i:D4}";
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                waiting[requestId] = done;
                var body = PlainJson(requestId, "1695493301223590792", "owner@example.com", Enumerable.Range(0, prospects).Select(p => $"0035gL{i:D4}{p:D4}"));
                var stopwatch = Stopwatch.StartNew();
                await channel.BasicPublishAsync(CommandExchange, string.Empty, mandatory: false, properties, body, cancellationToken);
                await done.Task.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);
                latencies.Add(stopwatch.Elapsed.TotalMilliseconds);
            }

            latencies.Sort();
            Console.Error.WriteLine($"latency: p50 {Percentile(latencies, 50):F0} ms, p99 {Percentile(latencies, 99):F0} ms");
            var note = $"{samples} sequential requests of {prospects} prospects; MaxBatchDelay 2 s + one call (sim 200-800 ms), Gong 3 calls/s";
            return
            [
                new(Name, "publish -> event p50", $"{N0(Percentile(latencies, 50))} ms", note),
                new(Name, "publish -> event p99", $"{N0(Percentile(latencies, 99))} ms", $"min {N0(latencies[0])} ms, max {N0(latencies[^1])} ms"),
            ];
        }
        finally
        {
            await bus.StopAsync(CancellationToken.None);
        }
    }
}
