using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using MassTransit;
using Npgsql;
using RabbitMQ.Client;
using Worker.Contracts;

namespace Worker.Demo;

/// <summary>Publishes the workload, follows the drain in Postgres, collects the result events, prints the summary.</summary>
internal sealed class DemoRunner(DemoSettings settings)
{
    private const string CommandExchange = "Worker.Contracts:AssignProspectsToFlow";
    private readonly ConcurrentDictionary<string, int> events = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Guid, byte> messageIds = new();

    public async Task<int> RunAsync(TextWriter output, CancellationToken cancellationToken)
    {
        var runId = DateTimeOffset.UtcNow.ToString("MMddHHmmss", CultureInfo.InvariantCulture);
        var workload = Workload.Create(runId, settings.Requests, settings.Pairs, settings.Seed);
        var prospects = workload.Requests.Sum(r => r.CrmProspectIds?.Count ?? 0);
        await output.WriteLineAsync($"Demo run {runId}: {workload.Requests.Count:N0} requests, {prospects:N0} prospect ids over {settings.Pairs} flow/owner pairs.");
        await output.WriteLineAsync($"Gong simulator at {settings.Simulator} with its rate limit raised to {settings.CallsPerSecondLimit:0.#} calls/s for the demo (real Gong: 3 calls/s).");

        await using var simulator = new SimulatorClient(settings.Simulator);
        await simulator.SeedExclusiveAsync(workload.ExclusiveFlowId, workload.ExclusiveProspects, cancellationToken);

        var bus = CreateBus(runId);
        await bus.StartAsync(cancellationToken);
        var stopwatch = Stopwatch.StartNew();
        var startedAt = DateTimeOffset.UtcNow;
        try
        {
            await PublishAsync(bus, workload, output, cancellationToken);
            await output.WriteLineAsync($"Published in {stopwatch.Elapsed.TotalSeconds:0.0} s (5% as plain JSON from a raw AMQP client). Draining...");

            await using var dataSource = NpgsqlDataSource.Create(settings.Postgres);
            var prefix = $"demo-{runId}-%";
            Progress progress;
            var deadline = stopwatch.Elapsed + settings.Timeout;
            while (true)
            {
                progress = await Progress.ReadAsync(dataSource, prefix, startedAt, cancellationToken);
                await output.WriteLineAsync(
                    $"  {stopwatch.Elapsed.TotalSeconds,6:0.0} s  requests {progress.CompletedRequests,5}/{workload.Requests.Count}  " +
                    $"prospects pending {progress.Open,7:N0}  final {progress.Final,7:N0}  gong calls {progress.AssignCalls,5}  events {events.Count,5}");
                if ((progress.CompletedRequests == workload.Requests.Count && events.Count >= workload.Requests.Count) || stopwatch.Elapsed > deadline)
                {
                    break;
                }

                await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
            }

            var elapsed = stopwatch.Elapsed;
            var summary = await Summary.ReadAsync(dataSource, prefix, startedAt, cancellationToken);
            var simStats = await simulator.TryGetStatsAsync(cancellationToken);
            var ok = summary.Print(output, workload.Requests.Count, events, messageIds.Count, elapsed, settings.CallsPerSecondLimit, simStats);
            await output.WriteLineAsync();
            await output.WriteLineAsync("Look at the results table:");
            await output.WriteLineAsync($"  psql \"{PsqlUri()}\" -c \"SELECT r.request_id, p.crm_prospect_id, p.status, p.error_code, p.flow_instance_id FROM prospect_assignments p JOIN assignment_requests r ON r.id = p.assignment_request_id WHERE r.request_id LIKE '{prefix}' ORDER BY p.id LIMIT 20\"");
            await output.WriteLineAsync($"  psql \"{PsqlUri()}\" -c \"SELECT status, count(*) FROM prospect_assignments GROUP BY status\"");
            await output.WriteLineAsync(ok ? "RESULT: OK, nothing lost or stuck." : "RESULT: FAILED, see above.");
            return ok ? 0 : 1;
        }
        finally
        {
            await bus.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>
    /// The psql connection URI; it carries the password only for the local default login (worker/worker of
    /// appsettings.Development.json and scripts/services-up.sh), so psql does not prompt. Any other password is left out.
    /// </summary>
    private string PsqlUri()
    {
        var b = new NpgsqlConnectionStringBuilder(settings.Postgres);
        var login = b is { Username: "worker", Password: "worker" } ? "worker:worker" : Uri.EscapeDataString(b.Username ?? string.Empty);
        return $"postgresql://{login}@{b.Host}:{b.Port}/{b.Database}";
    }

    private IBusControl CreateBus(string runId) => Bus.Factory.CreateUsingRabbitMq(cfg =>
    {
        cfg.Host(settings.RabbitMq);
        cfg.ReceiveEndpoint($"worker-demo-results-{runId}", e =>
        {
            e.AutoDelete = true;
            e.Durable = false;
            e.Handler<FlowAssignmentCompleted>(context =>
            {
                if (context.Message.RequestId.StartsWith($"demo-{runId}-", StringComparison.Ordinal))
                {
                    events.AddOrUpdate(context.Message.RequestId, 1, (_, n) => n + 1);
                    if (context.MessageId is { } id)
                    {
                        messageIds.TryAdd(id, 0);
                    }
                }

                return Task.CompletedTask;
            });
        });
    });

    private async Task PublishAsync(IBusControl bus, Workload workload, TextWriter output, CancellationToken cancellationToken)
    {
        var plain = workload.Requests.Where((_, i) => i % 20 == 19).ToList();
        var enveloped = workload.Requests.Where((_, i) => i % 20 != 19).ToList();
        foreach (var chunk in enveloped.Chunk(100))
        {
            await Task.WhenAll(chunk.Select(r => bus.Publish(r, cancellationToken)));
        }

        var factory = new ConnectionFactory { Uri = settings.RabbitMq };
        await using var connection = await factory.CreateConnectionAsync(cancellationToken);
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
        await channel.ExchangeDeclareAsync(CommandExchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        foreach (var request in plain)
        {
            var properties = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent, MessageId = Guid.NewGuid().ToString() };
            await channel.BasicPublishAsync(CommandExchange, string.Empty, mandatory: false, properties, Workload.ToPlainJson(request), cancellationToken);
        }

        await output.FlushAsync(cancellationToken);
    }
}
