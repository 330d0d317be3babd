using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Worker.Contracts;
using Worker.Host;
using Worker.Host.Ingest;
using Worker.Persistence;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.Benchmarks.Scenarios;

/// <summary>
/// Ingest throughput through real RabbitMQ into real Postgres: N plain-JSON messages of P prospects are queued
/// first, then a consumer drains them; prospects persisted per second are measured from the moment the consumer
/// is up until the last row is committed. Runs the worker's consumer (real host wiring, group commit) and a naive
/// consumer (EF Core, one SaveChanges per message, same prefetch) in the same run, each on a fresh vhost and database.
/// Options: <c>--messages=N</c> (default 10,000), <c>--naive-messages=N</c> (default 2,000), <c>--prospects=P</c> (default 10).
/// </summary>
internal sealed class IngestScenario : IScenario
{
    /// <summary>Prospects per second Gong can take at its default limit: 3 calls/s x 200 prospects per call.</summary>
    private const int GongDrainLimit = 600;

    public string Name => "ingest";

    public string Description => "AssignProspectsToFlow messages -> rows in Postgres: worker consumer vs a naive per-message SaveChanges consumer";

    public async Task<IReadOnlyList<ResultRow>> RunAsync(ScenarioContext context, CancellationToken cancellationToken)
    {
        var messages = context.GetInt("messages", 10_000);
        var naiveMessages = context.GetInt("naive-messages", 2_000);
        var prospects = context.GetInt("prospects", 10);

        var worker = await MeasureAsync(context.Services, messages, prospects, StartWorkerAsync);
        Console.Error.WriteLine($"worker: {worker.ProspectsPerSecond:F0} prospects/s");
        var naive = await MeasureAsync(context.Services, naiveMessages, prospects, StartNaiveAsync);
        Console.Error.WriteLine($"naive: {naive.ProspectsPerSecond:F0} prospects/s");

        var ratio = worker.ProspectsPerSecond / naive.ProspectsPerSecond;
        var overDrainLimit = worker.ProspectsPerSecond / GongDrainLimit;
        return
        [
            new(Name, "worker consumer, prospects/s", Format(worker.ProspectsPerSecond), $"{messages:N0} msgs x {prospects} prospects, {worker.Elapsed.TotalSeconds:F1} s"),
            new(Name, "worker ingest / Gong's drain limit", overDrainLimit.ToString("F1", CultureInfo.InvariantCulture) + "x", $"Gong takes at most {GongDrainLimit} prospects/s (3 calls/s x 200); target >= 10x"),
            new(Name, "worker consumer, messages/s", Format(worker.ProspectsPerSecond / prospects), "group commit: INSERT .. ON CONFLICT + binary COPY"),
            new(Name, "naive consumer, prospects/s", Format(naive.ProspectsPerSecond), $"{naiveMessages:N0} msgs, EF Core SaveChanges per message, {naive.Elapsed.TotalSeconds:F1} s"),
            new(Name, "ratio worker / naive", ratio.ToString("F1", CultureInfo.InvariantCulture) + "x", "information only: moves with the machine's load"),
        ];
    }

    private static string Format(double value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static async Task<Measurement> MeasureAsync(
        TestServices services, int messages, int prospects, Func<TestDatabase, TestVirtualHost, Task<IAsyncDisposable>> start)
    {
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();

        // Declare the topology (exchange -> queue) with a first start, then queue every message before consuming.
        await (await start(database, vhost)).DisposeAsync();
        await PublishAsync(vhost, messages, prospects);

        var expected = (long)messages * prospects;
        await using var consumer = await start(database, vhost);
        var stopwatch = Stopwatch.StartNew();
        var before = await CountProspectsAsync(database);
        long count;
        do
        {
            // A sampling loop, not a wait for a signal: the drain's end is read every 100 ms, so the measured time is
            // off by at most that (Poll's interval grows to 250 ms).
            await Task.Delay(100);
            count = await CountProspectsAsync(database);
        }
        while (count < expected && stopwatch.Elapsed < TimeSpan.FromMinutes(10));

        stopwatch.Stop();
        if (count < expected)
        {
            throw new TimeoutException($"Only {count} of {expected} prospects were stored in 10 minutes.");
        }

        return new Measurement((expected - before) / stopwatch.Elapsed.TotalSeconds, stopwatch.Elapsed);
    }

    /// <summary>Publishes <paramref name="messages"/> plain-JSON requests of <paramref name="prospects"/> ids over 40
    /// (flow, owner) groups and waits until the broker holds them all, so the drain measures consuming only.</summary>
    private static Task PublishAsync(TestVirtualHost vhost, int messages, int prospects) =>
        BenchSupport.PublishAndWaitQueuedAsync(vhost, Enumerable.Range(0, messages).Select(i => JsonSerializer.SerializeToUtf8Bytes(new
        {
            requestId = $"bench-{i:D8}",
            flowId = (1_695_493_301_223_590_000L + (i % 40)).ToString(CultureInfo.InvariantCulture),
            flowInstanceOwnerEmail = $"owner{i % 40}@example.com",
            crmProspectIds = Enumerable.Range(0, prospects).Select(p => $"0035g{i:D8}{p:D5}").ToArray(),
        })).ToList());

    private static async Task<long> CountProspectsAsync(TestDatabase database)
    {
        await using var connection = await database.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM prospect_assignments", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<IAsyncDisposable> StartWorkerAsync(TestDatabase database, TestVirtualHost vhost)
    {
        string[] args =
        [
            $"--ConnectionStrings:Postgres={database.ConnectionString}",
            "--Urls=http://127.0.0.1:0",
            .. WorkerSettings.IngestOnly,
            "--Logging:LogLevel:Default=Warning",
            .. vhost.ToWorkerConfiguration().Select(kv => $"--{kv.Key}={kv.Value}"),
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

    private static async Task<IAsyncDisposable> StartNaiveAsync(TestDatabase database, TestVirtualHost vhost)
    {
        var options = WorkerDbContextOptions.Create(database.ConnectionString);
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(vhost.Host, (ushort)vhost.Port, vhost.Name, h =>
            {
                h.Username(vhost.Username);
                h.Password(vhost.Password);
            });
            cfg.ReceiveEndpoint(IngestOptions.QueueName, e =>
            {
                e.PrefetchCount = 64; // the worker's default (RabbitMq:PrefetchCount)
                e.UseRawJsonDeserializer(RawSerializerOptions.AnyMessageType, isDefault: true);
                e.Consumer(() => new NaiveIngestConsumer(options));
            });
        });
        await bus.StartAsync();
        return new AsyncDisposable(() => new ValueTask(bus.StopAsync()));
    }

    private sealed record Measurement(double ProspectsPerSecond, TimeSpan Elapsed);

    private sealed class AsyncDisposable(Func<ValueTask> dispose) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => dispose();
    }

    /// <summary>The baseline: same validation, then one EF Core SaveChanges (one transaction) per message.</summary>
    private sealed class NaiveIngestConsumer(DbContextOptions<WorkerDbContext> options) : IConsumer<AssignProspectsToFlow>
    {
        public async Task Consume(ConsumeContext<AssignProspectsToFlow> context)
        {
            var request = AssignmentValidator.Validate(context.Message, 10_000);
            var now = DateTimeOffset.UtcNow;
            await using var db = new WorkerDbContext(options);
            db.AssignmentRequests.Add(new AssignmentRequest
            {
                RequestId = request.RequestId,
                FlowId = request.FlowId,
                OwnerEmail = request.OwnerEmail,
                OwnerEmailNormalized = request.OwnerEmailNormalized,
                ContentHash = request.ContentHash,
                ProspectCount = request.ProspectCount,
                PendingCount = request.ValidIds.Count,
                ReceivedAt = now,
                Prospects = request.ValidIds.Select(id => new ProspectAssignment
                {
                    CrmProspectId = id,
                    FlowId = request.FlowId,
                    OwnerEmail = request.OwnerEmailNormalized,
                    Status = ProspectAssignmentStatus.Pending,
                    AvailableAt = now,
                    CreatedAt = now,
                    UpdatedAt = now,
                }).ToList(),
            });
            await db.SaveChangesAsync(context.CancellationToken);
        }
    }
}
