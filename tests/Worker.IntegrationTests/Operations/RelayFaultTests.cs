using System.Net;
using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using RabbitMQ.Client;
using Worker.Contracts;
using Worker.Host.Operations;
using Worker.Host.Relay;
using Worker.IntegrationTests.Ingest;
using Worker.Testing;

namespace Worker.IntegrationTests.Operations;

/// <summary>
/// Issue 11 case 9 (relay part), against real Postgres and RabbitMQ: an outbox row whose payload cannot be read is
/// dead-lettered while the rest are published; publishes the broker refuses make readiness Degraded and are logged once
/// per state change, not once per round; a publish in flight at stop is awaited, never published again by the flush.
/// </summary>
public sealed class RelayFaultTests(ITestOutputHelper output)
{
    private const string EventExchange = "Worker.Contracts:FlowAssignmentCompleted";

    [Fact]
    public async Task An_unreadable_outbox_row_is_dead_lettered_counted_and_listed_while_the_others_are_published()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await InsertCompletedAsync(database, "good-1", Payload("good-1"));
        await InsertCompletedAsync(database, "bad-json", """{"requestId":"bad-json","outcomes":"not-a-list"}""");
        await InsertCompletedAsync(database, "bad-type", Payload("bad-type"), messageType: "Worker.Contracts.SomethingElse");
        await InsertCompletedAsync(database, "good-2", Payload("good-2"));

        await using var worker = await RunningWorker.StartAsync(Settings(database, vhost), output: output);
        await Poll.UntilAsync(async () => await ScalarAsync<long>(database, "SELECT count(*) FROM outbox_messages WHERE published_at IS NOT NULL") == 2, "both readable rows published");
        await Poll.UntilAsync(async () => await ScalarAsync<long>(database, "SELECT count(*) FROM outbox_messages WHERE failed_at IS NOT NULL") == 2, "both unreadable rows dead-lettered");

        // The relay keeps working past them: a row written later is published too, and the dead-lettered rows are never claimed again.
        await InsertCompletedAsync(database, "good-3", Payload("good-3"));
        await Poll.UntilAsync(async () => await ScalarAsync<long>(database, "SELECT count(*) FROM outbox_messages WHERE published_at IS NOT NULL") == 3, "the later row published");
        Assert.Equal(2L, await ScalarAsync<long>(database, "SELECT count(*) FROM outbox_messages WHERE failed_at IS NOT NULL AND published_at IS NULL AND attempts = 1"));

        var listed = await ReadViewAsync(database);
        Assert.Equal(["bad-json", "bad-type"], listed.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("JsonException", listed["bad-json"], StringComparison.Ordinal);
        Assert.Contains("Worker.Contracts.SomethingElse", listed["bad-type"], StringComparison.Ordinal);

        var metrics = await worker.GetAsync(HealthEndpoints.MetricsPath);
        Assert.Matches(@"(?m)^flow_assignment_outbox_dead_lettered_total\{[^}]*\} 2$", metrics.Body);
        Assert.Equal(2, worker.Logs.Lines.Count(l => l.StartsWith("Error ", StringComparison.Ordinal) && l.Contains("will never be published", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Refused_publishes_make_readiness_Degraded_with_one_log_line_per_state_change()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();

        // A queue bound to the event exchange that refuses every message: with publisher confirms the broker nacks each
        // publish, as it refuses (or, under a memory alarm, blocks) publishers. Per vhost, so no other test is touched.
        await using var amqp = await new ConnectionFactory { Uri = vhost.AmqpUri }.CreateConnectionAsync();
        await using (var channel = await amqp.CreateChannelAsync())
        {
            await BindEventQueueAsync(channel, "refuse-all", new Dictionary<string, object?> { ["x-max-length"] = 0, ["x-overflow"] = "reject-publish" });
        }

        for (var i = 1; i <= 3; i++)
        {
            await InsertCompletedAsync(database, $"refused-{i}", Payload($"refused-{i}"));
        }

        await using var worker = await RunningWorker.StartAsync(Settings(database, vhost), output: output);
        await Poll.UntilAsync(async () => await ScalarAsync<long>(database, "SELECT min(attempts)::bigint FROM outbox_messages") >= 6, "six failed publish rounds for every row");

        var (status, body) = await worker.GetAsync(HealthEndpoints.ReadyPath);
        var relay = RelayCheck(body);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Degraded", relay.GetProperty("status").GetString());
        Assert.Contains("Publishing result events fails", relay.GetProperty("description").GetString(), StringComparison.Ordinal);
        var failing = RelayLines(worker);
        Assert.True(failing.Count == 1, $"expected one relay line for the failing period, saw {failing.Count}:\n{string.Join('\n', failing)}");
        Assert.StartsWith("Warning", failing[0], StringComparison.Ordinal);
        var warnings = worker.Logs.Lines.Where(l => l.StartsWith("Warning ", StringComparison.Ordinal) || l.StartsWith("Error ", StringComparison.Ordinal) || l.StartsWith("Critical ", StringComparison.Ordinal)).ToList();
        Assert.True(warnings.Count <= 2, $"six failing rounds logged {warnings.Count} warning/error lines:\n{string.Join('\n', warnings)}");

        await using (var channel = await amqp.CreateChannelAsync())
        {
            await channel.QueueDeleteAsync("refuse-all");
        }

        await Poll.UntilAsync(async () => await ScalarAsync<long>(database, "SELECT count(*) FROM outbox_messages WHERE published_at IS NULL") == 0, "every row published once the broker accepts");
        await Poll.UntilAsync(async () => RelayCheck((await worker.GetAsync(HealthEndpoints.ReadyPath)).Body).GetProperty("status").GetString() == "Healthy", "readiness relay Healthy again");
        var lines = RelayLines(worker);
        Assert.True(lines.Count == 2, $"expected two relay lines (failing, working again), saw {lines.Count}:\n{string.Join('\n', lines)}");
        Assert.Contains("works again", lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_publish_whose_confirm_arrives_after_the_stop_is_marked_and_not_published_again_by_the_flush()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var worker = await RunningWorker.StartAsync(Settings(database, vhost));
        var relay = worker.App.Services.GetServices<IHostedService>().OfType<OutboxRelayService>().Single();
        await using var amqp = await new ConnectionFactory { Uri = vhost.AmqpUri }.CreateConnectionAsync();
        await using var probe = await amqp.CreateChannelAsync();
        await BindEventQueueAsync(probe, "count-all");
        var publishes = new ConfirmHold();
        using (worker.App.Services.GetRequiredService<IBus>().ConnectPublishObserver(publishes))
        {
            try
            {
                await InsertCompletedAsync(database, "confirmed-after-stop", Payload("confirmed-after-stop"));

                // The broker has the event and the publish waits for its confirm (held here) when the stop signal comes.
                await publishes.Held.WaitAsync(TimeSpan.FromSeconds(30));
                var stopping = relay.StopAsync(CancellationToken.None);
                publishes.Release();
                await stopping.WaitAsync(TimeSpan.FromSeconds(30));
            }
            finally
            {
                publishes.Release();
            }
        }

        // One publish, one message at the broker, the row marked: the shutdown flush did not send it a second time.
        Assert.Equal(1, publishes.Started);
        Assert.Equal(1u, await probe.MessageCountAsync("count-all"));
        Assert.Equal(1L, await ScalarAsync<long>(database, "SELECT count(*) FROM outbox_messages WHERE published_at IS NOT NULL AND attempts = 1"));
    }

    /// <summary>Declares the event exchange as MassTransit does and binds <paramref name="queue"/> to it.</summary>
    private static async Task BindEventQueueAsync(IChannel channel, string queue, IDictionary<string, object?>? arguments = null)
    {
        await channel.ExchangeDeclareAsync(EventExchange, ExchangeType.Fanout, durable: true, autoDelete: false);
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: arguments);
        await channel.QueueBindAsync(queue, EventExchange, string.Empty);
    }

    private static List<string> RelayLines(RunningWorker worker) =>
        [.. worker.Logs.Lines.Where(l => l.Contains(typeof(OutboxRelayService).FullName!, StringComparison.Ordinal) && !l.Contains(" scope: ", StringComparison.Ordinal))];

    private static JsonElement RelayCheck(string body) =>
        JsonDocument.Parse(body).RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "relay");

    private static IEnumerable<KeyValuePair<string, string?>> Settings(TestDatabase database, TestVirtualHost vhost) =>
    [
        new("ConnectionStrings:Postgres", database.ConnectionString),
        .. vhost.ToWorkerConfiguration(),
        new("Dispatch:Enabled", "false"),
        new("Gong:BaseUrl", "http://127.0.0.1:9/"),
        new("Gong:AccessKey", "test-access-key"),
        new("Gong:AccessKeySecret", "test-access-key-secret"),
        new("Relay:PollInterval", "00:00:00.100"),
        new("Relay:MaxRetryDelay", "00:00:00.200"),
        new("Relay:PublishTimeout", "00:00:02"),
    ];

    private static string Payload(string requestId) => JsonSerializer.Serialize(
        new FlowAssignmentCompleted(requestId, "1", "owner@example.com", RequestStatus.Rejected, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow,
            [new ProspectOutcome("a1", ProspectStatus.Rejected, ErrorCode: "RequestRejected", ErrorMessage: "test")], ["flowId: test"]),
        OutboxEvents.Json);

    private static async Task InsertCompletedAsync(TestDatabase database, string requestId, string payload, string? messageType = null)
    {
        await using var connection = await database.OpenConnectionAsync();
        await using var insert = new NpgsqlCommand("""
            WITH r AS (
                INSERT INTO assignment_requests (request_id, flow_id, owner_email, owner_email_normalized, status, prospect_count, pending_count,
                    assigned_count, not_assigned_count, failed_count, rejected_count, content_hash, received_at, completed_at)
                VALUES (@rid, '1', 'owner@example.com', 'owner@example.com', 'Rejected', 0, 0, 0, 0, 0, 0, @hash, now(), now())
                RETURNING id)
            INSERT INTO outbox_messages (id, assignment_request_id, message_type, payload, created_at, attempts, available_at)
            SELECT gen_random_uuid(), r.id, @type, @payload::jsonb, now(), 0, now() FROM r
            """, connection);
        insert.Parameters.AddWithValue("rid", requestId);
        insert.Parameters.AddWithValue("hash", new string('0', 64));
        insert.Parameters.AddWithValue("type", messageType ?? OutboxEvents.CompletedMessageType);
        insert.Parameters.AddWithValue("payload", payload);
        await insert.ExecuteNonQueryAsync();
    }

    private static async Task<T> ScalarAsync<T>(TestDatabase database, string sql)
    {
        await using var connection = await database.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<Dictionary<string, string>> ReadViewAsync(TestDatabase database)
    {
        await using var connection = await database.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SELECT request_id, failure_reason FROM ops_outbox_dead_lettered", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new Dictionary<string, string>(StringComparer.Ordinal);
        while (await reader.ReadAsync())
        {
            rows[reader.GetString(0)] = reader.GetString(1);
        }

        return rows;
    }

    /// <summary>
    /// Counts the relay's publishes and holds the first one's completion (after the broker confirmed it) until
    /// <see cref="Release"/>: to the relay, a confirm that arrives late.
    /// </summary>
    private sealed class ConfirmHold : IPublishObserver
    {
        private readonly TaskCompletionSource held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int started;

        public Task Held => held.Task;

        public int Started => Volatile.Read(ref started);

        public void Release() => released.TrySetResult();

        public Task PrePublish<T>(PublishContext<T> context)
            where T : class
        {
            if (context.Message is FlowAssignmentCompleted)
            {
                Interlocked.Increment(ref started);
            }

            return Task.CompletedTask;
        }

        public async Task PostPublish<T>(PublishContext<T> context)
            where T : class
        {
            if (context.Message is FlowAssignmentCompleted && held.TrySetResult())
            {
                await released.Task;
            }
        }

        public Task PublishFault<T>(PublishContext<T> context, Exception exception)
            where T : class => Task.CompletedTask;
    }
}
