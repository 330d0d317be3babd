using System.Collections.Concurrent;
using Gong.Simulator;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using Worker.Contracts;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Host.Ingest;
using Worker.Host.Messaging;
using Worker.Host.Operations;
using Worker.Host.Operations.Retention;
using Worker.Host.Persistence;
using Worker.Host.Relay;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.Dispatch;

/// <summary>
/// Builds worker hosts with persistence, messaging, dispatch and the real Gong client (<c>AddGongClient</c>: the send
/// loop, gated caller, reconciler and the Postgres rate gate) against an in-process Gong simulator, whose call log and
/// stats the tests read.
/// </summary>
internal static class DispatchHarness
{
    private const string AccessKey = "test-key";
    private const string AccessKeySecret = "test-secret";

    /// <summary>
    /// Starts the Gong simulator on a free loopback port, on the system clock. Its rate limit is off (0) unless
    /// <paramref name="requestsPerSecond"/> says otherwise (tests about pacing), its daily limit is off.
    /// </summary>
    public static Task<RunningSimulator> StartGongAsync(int requestsPerSecond = 0, Action<SimulatorOptions>? configure = null)
    {
        var options = new SimulatorOptions
        {
            AccessKey = AccessKey,
            AccessKeySecret = AccessKeySecret,
            RateLimit = new RateLimitOptions { RequestsPerSecond = requestsPerSecond, DailyCallLimit = 0 },
        };
        configure?.Invoke(options);
        if (requestsPerSecond > 0)
        {
            // A pacing test: the simulator counts arrivals in this process (HeapSettle).
            HeapSettle.Now();
        }

        return GongSimulatorApp.StartAsync(options);
    }

    /// <summary>Builds a worker whose Gong client calls <paramref name="gong"/>. The rate gate allows 100 calls/s with a
    /// 1 s window margin (<c>Gong:RequestsPerSecond</c>, <c>Gong:RateWindowMargin</c> in <paramref name="settings"/>
    /// override them: tests about pacing use the defaults); on a fake clock the gate's slots are
    /// on that clock (<c>Gong:RateGateClock=Local</c>), so the test moves it. <paramref name="decorateSender"/> wraps the
    /// real <see cref="IGongBatchSender"/>. The host logs at Warning to <paramref name="output"/> (the test's output).</summary>
    public static IHost BuildWorker(
        ITestOutputHelper output,
        string postgres,
        TestVirtualHost vhost,
        RunningSimulator gong,
        TimeProvider? clock = null,
        IEnumerable<KeyValuePair<string, string?>>? settings = null,
        int? rabbitPort = null,
        TimeSpan? shutdownTimeout = null,
        Func<IGongBatchSender, IGongBatchSender>? decorateSender = null)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Testing" });
        builder.Logging.UseTestLog(new TestLog(output.WriteLine));
        builder.Configuration.AddInMemoryCollection(vhost.ToWorkerConfiguration());
        builder.Configuration.AddInMemoryCollection(
        [
            new("ConnectionStrings:" + PersistenceExtensions.ConnectionStringName, postgres),
            new("Relay:MaxRetryDelay", "00:00:01"),
            new("Gong:BaseUrl", gong.BaseUrl.ToString().TrimEnd('/')),
            new("Gong:AccessKey", AccessKey),
            new("Gong:AccessKeySecret", AccessKeySecret),
            new("Gong:RequestsPerSecond", "100"),
        ]);
        if (clock is FakeTimeProvider)
        {
            // As GongReplica: a fake clock cannot be compared with the database's, and it moves in steps of 20 ms.
            builder.Configuration.AddInMemoryCollection([new("Gong:RateGateClock", "Local"), new("Gong:RateWindowMargin", "00:00:00.050")]);
        }
        else
        {
            // The largest margin (late tolerance 500 ms): a gate caller that opens a fresh connection through a proxy
            // (Pooling=false) for its block check on a busy machine would otherwise wake late and give up every slot.
            builder.Configuration.AddInMemoryCollection([new("Gong:RateWindowMargin", "00:00:01")]);
        }

        if (rabbitPort is { } port)
        {
            builder.Configuration.AddInMemoryCollection([new("RabbitMq:Host", "127.0.0.1"), new("RabbitMq:Port", port.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        }

        builder.Configuration.AddInMemoryCollection(settings ?? []);
        builder.Services.AddSingleton(clock ?? TimeProvider.System);
        builder.Services.AddMetrics();
        builder.Services.AddSingleton<WorkerMetrics>();
        builder.Services.AddSingleton<DispatchHeartbeat>();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(10));
        builder.AddWorkerPersistence();
        builder.AddWorkerIngest();
        builder.AddWorkerMessaging();
        builder.AddRelay();
        builder.AddGongClient();
        builder.AddDispatch();
        builder.AddRetention();
        if (decorateSender is not null)
        {
            builder.Services.AddTransient<GongBatchSender>();
            builder.Services.AddTransient(sp => decorateSender(sp.GetRequiredService<GongBatchSender>()));
        }

        return builder.Build();
    }

    /// <summary>The calls that reached the simulator's Gong endpoints, in the order they arrived (the log itself is in
    /// the order they finished).</summary>
    public static IReadOnlyList<CallRecord> Calls(this RunningSimulator gong) => [.. gong.State.GetCalls().OrderBy(c => c.Time)];

    /// <summary>No prospect was added to a flow twice (the simulator's <c>duplicateOfApiAssignmentAttempts</c> is 0),
    /// no call named an id twice, and exactly <paramref name="assigned"/> flow instances were created.</summary>
    public static void AssertAssignedOnce(this RunningSimulator gong, int assigned)
    {
        var stats = gong.State.GetStats();
        Assert.Equal((0, 0, assigned), (stats.DuplicateOfApiAssignmentAttempts, stats.CallsWithDuplicateIds, stats.AssignmentsCount));
    }

    /// <summary>Stores a request and one Pending row per unique id, in one transaction, as ingest does.</summary>
    public static async Task<long> SeedRequestAsync(TestDatabase database, string requestId, string flowId, string ownerEmail, IReadOnlyList<string> ids, DateTimeOffset now)
    {
        await using var connection = await database.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        long id;
        await using (var insert = new NpgsqlCommand("""
            INSERT INTO assignment_requests (request_id, flow_id, owner_email, owner_email_normalized, prospect_count, pending_count,
                assigned_count, not_assigned_count, failed_count, rejected_count, content_hash, received_at)
            VALUES (@rid, @flow, @owner, lower(@owner), @n, @n, 0, 0, 0, 0, @hash, @now) RETURNING id
            """, connection, transaction))
        {
            insert.Parameters.AddWithValue("rid", requestId);
            insert.Parameters.AddWithValue("flow", flowId);
            insert.Parameters.AddWithValue("owner", ownerEmail);
            insert.Parameters.AddWithValue("n", ids.Count);
            insert.Parameters.AddWithValue("hash", new string('0', 64));
            insert.Parameters.AddWithValue("now", now);
            id = (long)(await insert.ExecuteScalarAsync())!;
        }

        await using (var rows = new NpgsqlCommand("""
            INSERT INTO prospect_assignments (assignment_request_id, crm_prospect_id, flow_id, owner_email, status, reconciled, reconcile_first,
                attempts, available_at, created_at, updated_at)
            SELECT @req, x, @flow, lower(@owner), 'Pending', false, false, 0, @now, @now, @now FROM unnest(@ids) AS x
            """, connection, transaction))
        {
            rows.Parameters.AddWithValue("req", id);
            rows.Parameters.AddWithValue("flow", flowId);
            rows.Parameters.AddWithValue("owner", ownerEmail);
            rows.Parameters.AddWithValue("ids", ids.ToArray());
            rows.Parameters.AddWithValue("now", now);
            await rows.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
        return id;
    }

    public static string[] Ids(string prefix, int count) => [.. Enumerable.Range(1, count).Select(i => $"{prefix}{i:D6}")];

    /// <summary>Every request has exactly one terminal status and every prospect one terminal outcome; nothing InFlight.</summary>
    public static async Task AssertAllTerminalAsync(TestDatabase database)
    {
        await using var db = database.CreateDbContext();
        var requests = await db.AssignmentRequests.AsNoTracking().ToListAsync();
        Assert.All(requests, r =>
        {
            Assert.NotNull(r.Status);
            Assert.NotNull(r.CompletedAt);
            Assert.Equal(0, r.PendingCount);
            Assert.Equal(r.ProspectCount, r.AssignedCount + r.NotAssignedCount + r.FailedCount + r.RejectedCount);
        });
        var open = await db.ProspectAssignments.CountAsync(p => p.Status == ProspectAssignmentStatus.Pending || p.Status == ProspectAssignmentStatus.InFlight || p.CompletedAt == null);
        Assert.Equal(0, open);
        Assert.Equal(0, await db.DispatchBatches.CountAsync(b => b.CompletedAt == null));
        var outbox = await db.OutboxMessages.AsNoTracking().ToListAsync();
        Assert.Equal(requests.Count, outbox.Count);
        Assert.Equal(requests.Select(r => (long?)r.Id).Order(), outbox.Select(o => o.AssignmentRequestId).Order());
    }

    /// <summary>What a failed pacing assertion prints: every call as the simulator saw it arrive and every call as the
    /// workers started it (<c>gong_calls</c>), both in ms from the first start, in one list ordered by time (both
    /// clocks are this machine's).</summary>
    public static async Task<string> DescribeCallsAsync(IReadOnlyList<CallRecord> calls, Worker.Persistence.WorkerDbContext db)
    {
        var started = await db.GongCalls.AsNoTracking().OrderBy(c => c.StartedAt).ToListAsync();
        var origin = started.Count > 0 ? started[0].StartedAt : calls.Count > 0 ? calls[0].Time : DateTimeOffset.UtcNow;
        var lines = started.Select(c => (c.StartedAt, $"start   {c.Replica,-10} {c.Endpoint,-7} flow {c.FlowId,-4} {c.ProspectCount,3} ids -> {c.HttpStatus}"))
            .Concat(calls.Select(c => (c.Time, $"arrival            {c.Endpoint,-7} flow {c.FlowId,-4} {c.IdsCount,3} ids -> {c.Status}{(c.SelfCausedRateLimited == true ? " (self-caused)" : "")}")))
            .OrderBy(l => l.Item1)
            .Select(l => $"{(l.Item1 - origin).TotalMilliseconds,9:F1} ms  {l.Item2}");
        return string.Join('\n', lines);
    }

    public static async Task<bool> AllPublishedAsync(TestDatabase database, int expected)
    {
        await using var db = database.CreateDbContext();
        return await db.OutboxMessages.CountAsync(o => o.PublishedAt != null) == expected;
    }
}

/// <summary>Consumes FlowAssignmentCompleted from the test vhost, as a downstream system would.</summary>
internal sealed class EventCollector : IAsyncDisposable
{
    private readonly IBusControl bus;
    private readonly ConcurrentQueue<(Guid? MessageId, FlowAssignmentCompleted Message)> received = new();

    private EventCollector(IBusControl bus) => this.bus = bus;

    public IReadOnlyList<(Guid? MessageId, FlowAssignmentCompleted Message)> Received => [.. received];

    public static async Task<EventCollector> StartAsync(TestVirtualHost vhost)
    {
        EventCollector? collector = null;
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(vhost.Host, (ushort)vhost.Port, vhost.Name, h =>
            {
                h.Username(vhost.Username);
                h.Password(vhost.Password);
            });
            cfg.ReceiveEndpoint("dispatch-tests-completed", e => e.Handler<FlowAssignmentCompleted>(context =>
            {
                collector!.received.Enqueue((context.MessageId, context.Message));
                return Task.CompletedTask;
            }));
        });
        collector = new EventCollector(bus);
        await bus.StartAsync();
        return collector;
    }

    public FlowAssignmentCompleted? For(string requestId) => received.Select(r => r.Message).FirstOrDefault(m => m.RequestId == requestId);

    public async ValueTask DisposeAsync() => await bus.StopAsync();
}
