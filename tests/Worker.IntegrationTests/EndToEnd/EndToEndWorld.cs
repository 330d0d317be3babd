using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Gong.Simulator;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.EntityFrameworkCore;
using RabbitMQ.Client;
using Worker.Contracts;
using Worker.Host;
using Worker.IntegrationTests.Dispatch;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.EndToEnd;

/// <summary>
/// The whole path in one test: a fresh database and vhost, the Gong simulator in-process, the real worker host
/// (<see cref="WorkerHost.CreateBuilder"/>, every stage, its own appsettings.json) pointed at them, a MassTransit
/// publisher and a raw AMQP publisher as upstream systems, and a raw AMQP listener on the result exchange.
/// </summary>
internal sealed class EndToEndWorld : IAsyncDisposable
{
    public const string CommandExchange = "Worker.Contracts:AssignProspectsToFlow";

    private EndToEndWorld(TestDatabase database, TestVirtualHost vhost, RunningSimulator simulator, ResultEvents events)
    {
        Database = database;
        VirtualHost = vhost;
        Simulator = simulator;
        Events = events;
    }

    public TestDatabase Database { get; }

    public TestVirtualHost VirtualHost { get; }

    public RunningSimulator Simulator { get; }

    /// <summary>The test process's GC pause total when the world started (<see cref="HeapSettle.PausesSince"/>).</summary>
    public (TimeSpan Pause, int Gen2) HeapMark { get; private init; }

    public ResultEvents Events { get; }

    public WebApplication Worker { get; private set; } = null!;

    public HttpClient WorkerHttp { get; private set; } = null!;

    private IBusControl Publisher { get; set; } = null!;

    private string[] arguments = [];

    private TestLog log = new();

    private readonly List<WebApplication> replicas = [];

    /// <summary>Starts one more worker replica on the same database, vhost and simulator (settings added last win);
    /// returns its HTTP client (health, metrics) once it is ready. Stopped with the world.</summary>
    public async Task<HttpClient> StartReplicaAsync(params string[] settings)
    {
        var builder = WorkerHost.CreateBuilder([.. arguments, .. settings, "--Urls=http://127.0.0.1:0"]);
        builder.Logging.UseTestLog(log);
        var app = builder.Build();
        WorkerHost.MapEndpoints(app);
        await app.StartAsync();
        replicas.Add(app);
        return new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>The status and description of the named readiness check of the replica behind <paramref name="http"/>.</summary>
    public static async Task<(HttpStatusCode Http, string Status, string? Description)> ReadinessCheckAsync(HttpClient http, string name)
    {
        using var response = await http.GetAsync(new Uri("/health/ready", UriKind.Relative));
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var check = body.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);
        return (response.StatusCode, check.GetProperty("status").GetString()!, check.TryGetProperty("description", out var d) ? d.GetString() : null);
    }

    /// <summary>Messages on the command queue's error queue (0 when it was never declared).</summary>
    public async Task<uint> ErrorQueueDepthAsync()
    {
        await using var connection = await new ConnectionFactory { Uri = VirtualHost.AmqpUri }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            return (await channel.QueueDeclarePassiveAsync("assign-prospects-to-flow_error")).MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return 0;
        }
    }

    /// <summary>
    /// What every fault test asserts: Gong never saw a prospect our own call had assigned sent again
    /// (<c>duplicateOfApiAssignmentAttempts == 0</c>), every request has exactly one event (waits briefly for strays),
    /// no row is left Pending or InFlight, no batch is open, and nothing went to the error queue.
    /// </summary>
    public async Task AssertCleanAsync(IReadOnlyCollection<string> requestIds)
    {
        Assert.Equal(0, Simulator.State.GetStats().DuplicateOfApiAssignmentAttempts);
        await Poll.UntilAsync(async () =>
        {
            await using var db = Database.CreateDbContext();
            return await db.OutboxMessages.CountAsync(o => o.PublishedAt == null) == 0;
        }, TimeSpan.FromSeconds(30), "every outbox row published");
        foreach (var requestId in requestIds)
        {
            Assert.True(Events.For(requestId).Count == 1, $"{requestId}: {Events.For(requestId).Count} events");
        }

        Assert.Equal(requestIds.Count, Events.All.Count);
        await using (var db = Database.CreateDbContext())
        {
            Assert.Equal(0, await db.ProspectAssignments.CountAsync(p => p.Status == ProspectAssignmentStatus.Pending || p.Status == ProspectAssignmentStatus.InFlight));
            Assert.Equal(0, await db.DispatchBatches.CountAsync(b => b.CompletedAt == null));
        }

        Assert.Equal(0u, await ErrorQueueDepthAsync());
    }

    /// <summary>
    /// Starts everything and returns once the worker's <c>/health/ready</c> answers 200 (bus endpoints ready).
    /// The simulator's and the worker's call rates are both set to <paramref name="callsPerSecond"/>.
    /// <paramref name="beforeWorkerStarts"/> runs once the database, vhost, simulator, event listener and publisher exist
    /// and no worker has touched the broker yet.
    /// </summary>
    public static async Task<EndToEndWorld> StartAsync(
        SimulatorOptions? simulator = null,
        IEnumerable<string>? settings = null,
        int callsPerSecond = 20,
        Func<EndToEndWorld, Task>? beforeWorkerStarts = null,
        Action<WebApplicationBuilder>? configureWorker = null,
        ITestOutputHelper? output = null)
    {
        var services = await TestServices.GetAsync();
        var database = await services.CreateDatabaseAsync();
        var vhost = await services.CreateVirtualHostAsync();
        var heap = HeapSettle.Now();
        simulator ??= new SimulatorOptions();
        simulator.RateLimit.RequestsPerSecond = callsPerSecond;
        var sim = await GongSimulatorApp.StartAsync(simulator, "http://127.0.0.1:0");
        var events = await ResultEvents.StartAsync(vhost.AmqpUri);
        var world = new EndToEndWorld(database, vhost, sim, events) { HeapMark = heap };
        try
        {
            world.Publisher = Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host(vhost.Host, (ushort)vhost.Port, vhost.Name, h =>
            {
                h.Username(vhost.Username);
                h.Password(vhost.Password);
            }));
            await world.Publisher.StartAsync();
            if (beforeWorkerStarts is not null)
            {
                await beforeWorkerStarts(world);
            }

            string[] args =
            [
                $"--ConnectionStrings:Postgres={database.ConnectionString}",
                .. vhost.ToWorkerConfiguration().Select(s => $"--{s.Key}={s.Value}"),
                $"--Gong:BaseUrl={sim.BaseUrl}",
                "--Gong:AccessKey=sim-access-key",
                "--Gong:AccessKeySecret=sim-access-key-secret",
                $"--Gong:RequestsPerSecond={callsPerSecond.ToString(CultureInfo.InvariantCulture)}",
                "--Gong:ReconcileDelay=00:00:00.200",
                "--Dispatch:MaxBatchDelay=00:00:00.200",
                "--Dispatch:PollInterval=00:00:00.100",
                "--Dispatch:RetryDelay=00:00:00.200",
                "--Relay:PollInterval=00:00:00.200",
                "--Relay:MaxRetryDelay=00:00:01",
                "--Operations:ShutdownTimeout=00:00:10",
                "--Operations:GaugeRefreshInterval=00:00:01",
                "--Logging:LogLevel:Default=Warning",
                .. settings ?? [],
                "--Urls=http://127.0.0.1:0",
            ];
            world.arguments = args;
            world.log = new TestLog(output is null ? null : output.WriteLine);
            var builder = WorkerHost.CreateBuilder(args);
            builder.Logging.UseTestLog(world.log);
            configureWorker?.Invoke(builder);
            var app = builder.Build();
            WorkerHost.MapEndpoints(app);
            await app.StartAsync();
            world.Worker = app;
            world.WorkerHttp = new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = TimeSpan.FromSeconds(30) };
            await Poll.UntilAsync(async () => (await world.ReadinessAsync()).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(60), "worker /health/ready answers 200");

            return world;
        }
        catch
        {
            await world.DisposeAsync();
            throw;
        }
    }

    /// <summary>Publishes the record as a .NET upstream system does (MassTransit envelope).</summary>
    public Task PublishAsync(AssignProspectsToFlow request) => Publisher.Publish(request);

    /// <summary>Publishes a plain JSON body with <c>content_type: application/json</c> from a raw AMQP client, with publisher confirms.</summary>
    public async Task PublishPlainJsonAsync(string json)
    {
        var factory = new ConnectionFactory { Uri = VirtualHost.AmqpUri, ClientProvidedName = "e2e-plain-json-publisher" };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        var properties = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent, MessageId = Guid.NewGuid().ToString() };
        await channel.BasicPublishAsync(CommandExchange, string.Empty, mandatory: true, properties, Encoding.UTF8.GetBytes(json));
    }

    public async Task<(HttpStatusCode Status, JsonElement Body)> ReadinessAsync()
    {
        using var response = await WorkerHttp.GetAsync(new Uri("/health/ready", UriKind.Relative));
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>The status of the named check in <c>/health/ready</c>.</summary>
    public async Task<(HttpStatusCode Http, string Status, string? Description)> ReadinessCheckAsync(string name)
    {
        var (status, body) = await ReadinessAsync();
        var check = body.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);
        return (status, check.GetProperty("status").GetString()!, check.TryGetProperty("description", out var d) ? d.GetString() : null);
    }

    /// <summary>Waits until every request named has its result event.</summary>
    public Task WaitForEventsAsync(IEnumerable<string> requestIds, TimeSpan timeout)
    {
        var ids = requestIds.ToList();
        return Poll.UntilAsync(() => Events.HasAll(ids), timeout, $"result events for {string.Join(", ", ids)}");
    }

    public async Task<AssignmentRequest> RequestAsync(string requestId)
    {
        await using var db = Database.CreateDbContext();
        return await db.AssignmentRequests.AsNoTracking().SingleAsync(r => r.RequestId == requestId);
    }

    public async Task<List<ProspectAssignment>> ProspectsAsync(string requestId)
    {
        await using var db = Database.CreateDbContext();
        return await db.ProspectAssignments.AsNoTracking().Where(p => p.AssignmentRequest!.RequestId == requestId).OrderBy(p => p.Id).ToListAsync();
    }

    public async Task<OutboxMessage> OutboxRowAsync(string requestId)
    {
        await using var db = Database.CreateDbContext();
        var request = await db.AssignmentRequests.AsNoTracking().SingleAsync(r => r.RequestId == requestId);
        return await db.OutboxMessages.AsNoTracking().SingleAsync(o => o.AssignmentRequestId == request.Id);
    }

    public async Task<List<GongCall>> GongCallsAsync()
    {
        await using var db = Database.CreateDbContext();
        return await db.GongCalls.AsNoTracking().OrderBy(c => c.Id).ToListAsync();
    }

    /// <summary>
    /// The event and the results table agree for <paramref name="requestId"/>, the event's MessageId is the outbox row
    /// id, it came once, and every Assigned prospect carries the flow instance the simulator holds for it.
    /// </summary>
    public async Task<(FlowAssignmentCompleted Event, List<ProspectAssignment> Rows)> AssertEventMatchesTableAsync(string requestId)
    {
        var received = Events.Single(requestId);
        var message = received.Message;
        var request = await RequestAsync(requestId);
        var rows = await ProspectsAsync(requestId);
        var outbox = await OutboxRowAsync(requestId);

        Assert.Equal(outbox.Id, received.MessageId);
        Assert.Equal(outbox.Id.ToString(), received.AmqpMessageId);
        Assert.Equal("application/vnd.masstransit+json", received.ContentType);
        Assert.NotNull(outbox.PublishedAt);

        Assert.Equal(request.Status, message.Status);
        Assert.NotNull(request.CompletedAt);
        Assert.Equal(0, request.PendingCount);
        Assert.Equal(request.FlowId, message.FlowId);
        Assert.Equal(rows.Count, message.Outcomes.Count);
        Assert.Equal(rows.Count, message.Outcomes.Select(o => o.CrmProspectId).Distinct(StringComparer.Ordinal).Count());
        var open = Simulator.State.FindOpenInstances(rows.Select(r => r.CrmProspectId)).ToLookup(i => i.CrmProspectId, StringComparer.Ordinal);
        foreach (var row in rows)
        {
            var outcome = Assert.Single(message.Outcomes, o => o.CrmProspectId == row.CrmProspectId);
            Assert.Equal(row.Status.ToString(), outcome.Status.ToString());
            Assert.NotNull(row.CompletedAt);
            Assert.Equal(row.FlowInstanceId, outcome.FlowInstanceId);
            Assert.Equal(row.ErrorCode, outcome.ErrorCode);
            if (outcome.Status == ProspectStatus.Assigned)
            {
                Assert.False(string.IsNullOrEmpty(outcome.FlowInstanceId));
                Assert.False(string.IsNullOrEmpty(outcome.GongRequestId));
                var instance = Assert.Single(open[row.CrmProspectId], i => i.FlowId == row.FlowId);
                Assert.Equal(instance.FlowInstanceId, outcome.FlowInstanceId);
            }
            else
            {
                Assert.Null(outcome.FlowInstanceId);
                Assert.False(string.IsNullOrEmpty(outcome.ErrorCode));
            }
        }

        return (message, rows);
    }

    public static string[] Ids(string prefix, int count) => [.. Enumerable.Range(1, count).Select(i => $"{prefix}{i:D4}")];

    public static string PlainJson(string requestId, string flowId, string owner, IEnumerable<string> ids, bool extraField = false)
    {
        var body = new Dictionary<string, object?>
        {
            ["requestId"] = requestId,
            ["flowId"] = flowId,
            ["flowInstanceOwnerEmail"] = owner,
            ["crmProspectIds"] = ids.ToArray(),
        };
        if (extraField)
        {
            body["sourceSystem"] = "salesforce";
        }

        return JsonSerializer.Serialize(body);
    }

    public async ValueTask DisposeAsync()
    {
        HeapSettle.EndQuiet();
        if (Publisher is not null)
        {
            await Publisher.StopAsync();
        }

        WorkerHttp?.Dispose();
        foreach (var replica in replicas)
        {
            await replica.StopAsync();
            await replica.DisposeAsync();
        }

        if (Worker is not null)
        {
            await Worker.StopAsync();
            await Worker.DisposeAsync();
        }

        await Events.DisposeAsync();
        await Simulator.DisposeAsync();
        await VirtualHost.DisposeAsync();
        await Database.DisposeAsync();
    }
}
