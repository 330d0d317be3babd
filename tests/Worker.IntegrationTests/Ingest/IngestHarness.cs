using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using RabbitMQ.Client;
using Worker.Contracts;
using Worker.Host;
using Worker.Host.Ingest;
using Worker.Host.Operations;
using Worker.Host.Relay;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.Ingest;

/// <summary>
/// A database and vhost of their own, and the worker host started through its real wiring
/// (<see cref="WorkerHost.CreateBuilder"/>) on them, logging at Warning to <see cref="Log"/> (the test output).
/// Also publishes as a non-.NET client would (RabbitMQ.Client). Shared by the tests of a class through
/// <see cref="IngestHostFixture"/>, or owned by one test that needs its own (outages, exact counters, a second host).
/// </summary>
internal sealed class IngestHarness : IAsyncDisposable
{
    public const string Exchange = "Worker.Contracts:AssignProspectsToFlow";
    public const string ErrorQueue = IngestOptions.QueueName + "_error";

    private readonly List<WebApplication> hosts = [];
    private readonly List<MeterListener> listeners = [];
    private IConnection? amqp;

    private IngestHarness(TestDatabase database, TestVirtualHost vhost, TestLog log)
    {
        Database = database;
        VirtualHost = vhost;
        Log = log;
    }

    /// <summary>Where this harness's hosts log (Warning and above): the owning test's output, or the attached test's.</summary>
    public TestLog Log { get; }

    public TestDatabase Database { get; }

    public TestVirtualHost VirtualHost { get; }

    /// <summary>flow_assignment.messages.ingested by result, summed over this harness's hosts.</summary>
    public ConcurrentDictionary<string, long> Ingested { get; } = new();

    public IBus Bus => hosts[0].Services.GetRequiredService<IBus>();

    /// <summary>A database and vhost with one worker host started on them, logging to <paramref name="output"/>.</summary>
    public static async Task<IngestHarness> StartAsync(ITestOutputHelper? output, params string[] settings)
    {
        var harness = await CreateAsync(output);
        await harness.StartHostAsync(harness.Database.ConnectionString, settings);
        return harness;
    }

    /// <summary>A database (a copy of the run's migrated template) and vhost, no host yet (see <see cref="StartHostAsync"/>).</summary>
    public static async Task<IngestHarness> CreateAsync(ITestOutputHelper? output)
    {
        var services = await TestServices.GetAsync();
        return new IngestHarness(await services.CreateDatabaseAsync(), await services.CreateVirtualHostAsync(), new TestLog(output is null ? null : output.WriteLine));
    }

    /// <summary>Starts (another) worker host on this harness's vhost, with the given Postgres connection string.</summary>
    public async Task StartHostAsync(string connectionString, params string[] settings)
    {
        string[] args =
        [
            $"--ConnectionStrings:Postgres={connectionString}",
            "--Urls=http://127.0.0.1:0",
            .. WorkerSettings.IngestOnly,
            .. VirtualHost.ToWorkerConfiguration().Select(kv => $"--{kv.Key}={kv.Value}"),
            .. settings,
        ];
        var builder = WorkerHost.CreateBuilder(args);
        builder.Logging.UseTestLog(Log);
        builder.Services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
        var app = builder.Build();
        WorkerHost.MapEndpoints(app);
        ListenToMetrics(app.Services.GetRequiredService<IMeterFactory>());
        await app.StartAsync();
        hosts.Add(app);
    }

    /// <summary>Publishes <paramref name="body"/> as a raw AMQP message; returns its <c>message_id</c>.</summary>
    public async Task<string> PublishRawAsync(string body, string? contentType = "application/json")
    {
        amqp ??= await new ConnectionFactory { Uri = VirtualHost.AmqpUri }.CreateConnectionAsync();
        await using var channel = await amqp.CreateChannelAsync();
        var properties = new BasicProperties
        {
            ContentType = contentType,
            DeliveryMode = DeliveryModes.Persistent,
            MessageId = Guid.NewGuid().ToString(),
        };
        await channel.BasicPublishAsync(Exchange, string.Empty, mandatory: false, properties, Encoding.UTF8.GetBytes(body));
        return properties.MessageId;
    }

    public Task PublishAsync(AssignProspectsToFlow message) => Bus.Publish(message);

    /// <summary>Waits for the request row (with its prospects) to be committed.</summary>
    public async Task<AssignmentRequest> WaitForRequestAsync(string requestId)
    {
        var found = await Poll.UntilAsync(async () =>
        {
            await using var db = Database.CreateDbContext();
            return await db.AssignmentRequests.AsNoTracking().Include(r => r.Prospects).SingleOrDefaultAsync(r => r.RequestId == requestId);
        }, request => request is not null, $"request {requestId} stored");
        return found!;
    }

    /// <summary>
    /// Waits for the message published as <paramref name="messageId"/> on the endpoint's error queue and takes it.
    /// Other messages found on the way are taken too (a shared vhost's leftovers) and named if the wait times out.
    /// </summary>
    public async Task<ErrorQueueMessage> TakeFromErrorQueueAsync(string messageId)
    {
        amqp ??= await new ConnectionFactory { Uri = VirtualHost.AmqpUri }.CreateConnectionAsync();
        var others = new List<string>();
        var result = await Poll.UntilAsync(async () =>
        {
            // MassTransit declares the error queue with the first fault; until then a get closes the channel (404).
            await using var channel = await amqp.CreateChannelAsync();
            try
            {
                var got = await channel.BasicGetAsync(ErrorQueue, autoAck: true);
                if (got is not null && got.BasicProperties.MessageId != messageId)
                {
                    others.Add($"{got.BasicProperties.MessageId}: {Encoding.UTF8.GetString(got.Body.Span)}");
                    return null;
                }

                return got;
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                return null;
            }
        }, got => got is not null, $"message {messageId} on {ErrorQueue} (other messages taken: {others.Count})");
        var headers = (result!.BasicProperties.Headers ?? new Dictionary<string, object?>())
            .ToDictionary(h => h.Key, h => h.Value is byte[] bytes ? Encoding.UTF8.GetString(bytes) : h.Value?.ToString(), StringComparer.Ordinal);
        return new ErrorQueueMessage(Encoding.UTF8.GetString(result.Body.Span), headers);
    }

    public async Task<uint> ErrorQueueDepthAsync()
    {
        amqp ??= await new ConnectionFactory { Uri = VirtualHost.AmqpUri }.CreateConnectionAsync();
        await using var channel = await amqp.CreateChannelAsync();
        try
        {
            var ok = await channel.QueueDeclarePassiveAsync(ErrorQueue);
            return ok.MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return 0; // not declared: nothing was ever faulted
        }
    }

    /// <summary>The command queue right now (AMQP passive declare, not the management API's sampled figures): Ready messages and consumers.</summary>
    public async Task<(uint Ready, uint Consumers)> CommandQueueAsync()
    {
        amqp ??= await new ConnectionFactory { Uri = VirtualHost.AmqpUri }.CreateConnectionAsync();
        await using var channel = await amqp.CreateChannelAsync();
        var ok = await channel.QueueDeclarePassiveAsync(IngestOptions.QueueName);
        return (ok.MessageCount, ok.ConsumerCount);
    }

    public async Task<int> CountRequestsAsync()
    {
        await using var db = Database.CreateDbContext();
        return await db.AssignmentRequests.CountAsync();
    }

    /// <summary>The FlowAssignmentCompleted rows written to the outbox for <paramref name="request"/>.</summary>
    public async Task<List<FlowAssignmentCompleted>> OutboxEventsAsync(AssignmentRequest request)
    {
        await using var db = Database.CreateDbContext();
        var rows = await db.OutboxMessages.AsNoTracking().Where(m => m.AssignmentRequestId == request.Id).ToListAsync();
        return rows.Select(OutboxEvents.ReadCompleted).ToList();
    }

    /// <summary>Waits until flow_assignment.messages.ingested{result} reaches <paramref name="count"/> (take a count before publishing on a shared host).</summary>
    public Task WaitForIngestedAsync(string result, long count) =>
        Poll.UntilAsync(() => Task.FromResult(Ingested.GetValueOrDefault(result)), n => n >= count, $"{count} message(s) ingested as {result}");

    public async ValueTask DisposeAsync()
    {
        foreach (var host in hosts)
        {
            await host.StopAsync();
            await host.DisposeAsync();
        }

        foreach (var listener in listeners)
        {
            listener.Dispose();
        }

        if (amqp is not null)
        {
            await amqp.DisposeAsync();
        }

        NpgsqlConnection.ClearAllPools();
        await VirtualHost.DisposeAsync();
        await Database.DisposeAsync();
    }

    private void ListenToMetrics(IMeterFactory factory)
    {
        // Only this host's meter (its factory is the meter's scope): tests run in parallel in one process.
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == WorkerMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, factory)
                    && instrument.Name == "flow_assignment.messages.ingested")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "result")
                {
                    Ingested.AddOrUpdate((string)tag.Value!, value, (_, old) => old + value);
                }
            }
        });
        listener.Start();
        listeners.Add(listener);
    }
}

internal sealed record ErrorQueueMessage(string Body, IReadOnlyDictionary<string, string?> Headers)
{
    public string Reason => Headers.GetValueOrDefault("MT-Fault-Message") ?? Headers.GetValueOrDefault("MT-Reason") ?? string.Empty;
}
