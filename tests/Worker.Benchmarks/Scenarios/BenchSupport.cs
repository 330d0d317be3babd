using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Gong.Simulator;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using RabbitMQ.Client;
using Worker.Host;
using Worker.Host.Ingest;
using Worker.Testing;

namespace Worker.Benchmarks.Scenarios;

/// <summary>What the scenarios share: worker hosts with the real wiring, the simulator, publishing, polling, SQL.</summary>
internal static class BenchSupport
{
    public const string CommandExchange = "Worker.Contracts:AssignProspectsToFlow";

    public static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>Starts the worker in-process through <see cref="WorkerHost.CreateBuilder"/> with command-line settings.</summary>
    public static async Task<IAsyncDisposable> StartWorkerAsync(TestDatabase database, TestVirtualHost vhost, IEnumerable<string> settings)
    {
        string[] args =
        [
            $"--ConnectionStrings:Postgres={database.ConnectionString}",
            "--Urls=http://127.0.0.1:0",
            "--Logging:LogLevel:Default=Warning",
            .. vhost.ToWorkerConfiguration().Select(kv => $"--{kv.Key}={kv.Value}"),
            .. settings,
        ];
        var builder = WorkerHost.CreateBuilder(args);
        builder.Services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
        var app = builder.Build();
        await app.StartAsync();
        return new AsyncDisposable(async () =>
        {
            await app.StopAsync();
            await app.DisposeAsync();
        });
    }

    /// <summary>The worker's Gong settings for a simulator, with the worker's gate at <paramref name="callsPerSecond"/>.</summary>
    public static IEnumerable<KeyValuePair<string, string>> GongSettings(RunningSimulator simulator, int callsPerSecond) =>
    [
        new("Gong:BaseUrl", simulator.BaseUrl.ToString()),
        new("Gong:AccessKey", simulator.State.Options.AccessKey),
        new("Gong:AccessKeySecret", simulator.State.Options.AccessKeySecret),
        new("Gong:RequestsPerSecond", callsPerSecond.ToString(Invariant)),
        new("Gong:DailyCallLimit", "1000000"),
    ];

    /// <summary>A simulator at <paramref name="callsPerSecond"/> (Gong's 3 by default), no daily cap, 200–800 ms per call.</summary>
    public static Task<RunningSimulator> StartSimulatorAsync(int callsPerSecond, int latencyMinMs = 200, int latencyMaxMs = 800) =>
        GongSimulatorApp.StartAsync(new SimulatorOptions
        {
            RateLimit = new RateLimitOptions { RequestsPerSecond = callsPerSecond, DailyCallLimit = 0 },
            Faults = new FaultOptions { LatencyMinMs = latencyMinMs, LatencyMaxMs = latencyMaxMs },
        });

    /// <summary>
    /// Starts a MassTransit bus on <paramref name="vhost"/> whose endpoint <paramref name="queue"/> consumes
    /// <c>FlowAssignmentCompleted</c> events and completes the waiter registered in <paramref name="waiting"/> under
    /// the event's requestId. Stop it when done.
    /// </summary>
    public static async Task<IBusControl> StartEventListenerAsync(
        TestVirtualHost vhost, string queue, System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource> waiting)
    {
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(vhost.Host, (ushort)vhost.Port, vhost.Name, h =>
            {
                h.Username(vhost.Username);
                h.Password(vhost.Password);
            });
            cfg.ReceiveEndpoint(queue, e => e.Handler<Worker.Contracts.FlowAssignmentCompleted>(ctx =>
            {
                if (waiting.TryGetValue(ctx.Message.RequestId, out var done))
                {
                    done.TrySetResult();
                }

                return Task.CompletedTask;
            }));
        });
        await bus.StartAsync();
        return bus;
    }

    /// <summary>An <c>AssignProspectsToFlow</c> as plain JSON.</summary>
    public static byte[] PlainJson(string requestId, string flowId, string owner, IEnumerable<string> ids) =>
        JsonSerializer.SerializeToUtf8Bytes(new { requestId, flowId, flowInstanceOwnerEmail = owner, crmProspectIds = ids.ToArray() });

    /// <summary>Publishes plain-JSON bodies to the command exchange and waits until the queue holds them all.</summary>
    public static async Task PublishAndWaitQueuedAsync(TestVirtualHost vhost, IReadOnlyList<byte[]> bodies)
    {
        await using var connection = await new ConnectionFactory { Uri = vhost.AmqpUri }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await PublishAsync(channel, bodies);
        await Poll.UntilAsync(
            async () => (await channel.QueueDeclarePassiveAsync(IngestOptions.QueueName)).MessageCount >= bodies.Count,
            TimeSpan.FromMinutes(5),
            "the broker to queue every published message");
    }

    /// <summary>Publishes plain-JSON bodies to the command exchange (persistent, in order) without waiting for consumers.</summary>
    public static async Task PublishAsync(TestVirtualHost vhost, IReadOnlyList<byte[]> bodies)
    {
        await using var connection = await new ConnectionFactory { Uri = vhost.AmqpUri }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await PublishAsync(channel, bodies);
    }

    private static async Task PublishAsync(IChannel channel, IReadOnlyList<byte[]> bodies)
    {
        var properties = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent };
        foreach (var body in bodies)
        {
            await channel.BasicPublishAsync(CommandExchange, string.Empty, mandatory: false, properties, body);
        }
    }

    /// <summary>One scalar from the database (a number comes back as <c>double</c>, <c>long</c> or null).</summary>
    public static async Task<T> ScalarAsync<T>(TestDatabase database, string sql)
    {
        await using var connection = await database.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 600 };
        var value = await command.ExecuteScalarAsync();
        return value is null or DBNull ? default! : (T)Convert.ChangeType(value, typeof(T), Invariant);
    }

    public static string N0(double value) => value.ToString("N0", Invariant);

    public static string F(double value, int digits) => value.ToString("F" + digits.ToString(Invariant), Invariant);

    /// <summary>Nearest-rank percentile of <paramref name="sorted"/> (ascending).</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double p) =>
        sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    public sealed class AsyncDisposable(Func<ValueTask> dispose) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => dispose();
    }
}
