using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;
using Worker.Contracts;
using Worker.Persistence.Entities;
using Worker.Testing;
using static Worker.IntegrationTests.Dispatch.DispatchHarness;

namespace Worker.IntegrationTests.Dispatch;

public sealed class DispatchTests(ITestOutputHelper output)
{
    private const string Flow = "1695493301223590792";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task One_request_of_450_ids_goes_out_in_calls_of_200_200_50_and_yields_one_event_with_450_outcomes()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        await using var gong = await StartGongAsync();
        var ids = Ids("p", 450);
        await SeedRequestAsync(database, "req-450", Flow, "Owner@Example.com", ids, DateTimeOffset.UtcNow);

        using var host = BuildWorker(output, database.ConnectionString, vhost, gong);
        await host.StartAsync();
        await Poll.UntilAsync(() => events.Received.Count >= 1, Timeout, "the request's event");
        await host.StopAsync();

        var sent = gong.Calls();
        Assert.Equal(3, sent.Count);
        Assert.All(sent, c => Assert.Equal((SimulatorEndpoints.Assign, 200), (c.Endpoint, c.Status)));
        Assert.Equal(450, sent.SelectMany(c => c.Ids).Distinct().Count());
        gong.AssertAssignedOnce(450);
        var (messageId, message) = Assert.Single(events.Received);
        Assert.Equal("req-450", message.RequestId);
        Assert.Equal("Owner@Example.com", message.FlowInstanceOwnerEmail);
        Assert.Equal(RequestStatus.Succeeded, message.Status);
        Assert.Equal(ids, message.Outcomes.Select(o => o.CrmProspectId).Order(StringComparer.Ordinal));
        Assert.All(message.Outcomes, o =>
        {
            Assert.Equal(ProspectStatus.Assigned, o.Status);
            Assert.NotNull(o.FlowInstanceId);
            Assert.NotNull(o.GongRequestId);
        });

        await using var db = database.CreateDbContext();
        Assert.Equal(messageId, (await db.OutboxMessages.SingleAsync()).Id);
        var calls = await db.GongCalls.OrderBy(c => c.ProspectCount).ToListAsync();
        Assert.Equal([50, 200, 200], calls.Select(c => c.ProspectCount));
        // The batches were claimed (and handed to the Gong client) as 200, 200, 50; Gong got one call per batch, of
        // its size. (The three calls run concurrently through the gate, so their arrival order at Gong is not fixed.)
        var batches = await db.DispatchBatches.OrderBy(b => b.ClaimedAt).ToListAsync();
        Assert.Equal([200, 200, 50], batches.Select(b => b.ProspectCount));
        Assert.Equal([200, 200, 50], batches.Select(b => sent.Single(c => c.RequestId == calls.Single(r => r.BatchId == b.Id).GongRequestId).Ids.Count));
        await AssertAllTerminalAsync(database);
    }

    [Fact]
    public async Task Three_hundred_one_id_requests_of_one_group_within_a_second_take_two_calls()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 10, 0, 0, TimeSpan.Zero));
        await using var gong = await StartGongAsync();

        using var host = BuildWorker(output, database.ConnectionString, vhost, gong, clock);
        await host.StartAsync();
        for (var i = 0; i < 300; i++)
        {
            // Each request in its own transaction, all within the same second of the worker's clock.
            await SeedRequestAsync(database, $"one-{i:D3}", Flow, "owner@example.com", [$"c{i:D3}"], clock.GetUtcNow());
            if (i % 100 == 0)
            {
                clock.Advance(TimeSpan.FromMilliseconds(300));
            }
        }

        await Poll.UntilAsync(() => events.Received.Count == 300, Timeout, "300 events",
            eachRound: () => clock.Advance(TimeSpan.FromMilliseconds(200)));
        await host.StopAsync();

        var calls = gong.Calls();
        Assert.Equal(2, calls.Count);
        Assert.Equal(300, calls.Sum(c => c.Ids.Count));
        Assert.Equal(200, calls[0].Ids.Count);
        gong.AssertAssignedOnce(300);
        Assert.Equal(300, events.Received.Select(e => e.MessageId).Distinct().Count());
        await AssertAllTerminalAsync(database);
    }

    [Fact]
    public async Task A_prospect_in_two_requests_of_a_group_is_sent_once_and_both_events_carry_it()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        await using var gong = await StartGongAsync();
        var now = DateTimeOffset.UtcNow;
        await SeedRequestAsync(database, "first", Flow, "owner@example.com", ["shared", "a1"], now);
        await SeedRequestAsync(database, "second", Flow, "OWNER@example.com", ["shared", "b1"], now);

        using var host = BuildWorker(output, database.ConnectionString, vhost, gong);
        await host.StartAsync();
        await Poll.UntilAsync(() => events.Received.Count >= 2, Timeout, "both events");
        await host.StopAsync();

        var call = Assert.Single(gong.Calls());
        Assert.Equal((SimulatorEndpoints.Assign, Flow), (call.Endpoint, call.FlowId));
        Assert.Equal(["a1", "b1", "shared"], call.Ids.Order(StringComparer.Ordinal));
        Assert.Equal(Flow, Assert.Single(gong.State.FindOpenInstances(["shared"])).FlowId);
        gong.AssertAssignedOnce(3);
        var first = events.For("first")!;
        var second = events.For("second")!;
        var sharedFirst = Assert.Single(first.Outcomes, o => o.CrmProspectId == "shared");
        var sharedSecond = Assert.Single(second.Outcomes, o => o.CrmProspectId == "shared");
        Assert.Equal(ProspectStatus.Assigned, sharedFirst.Status);
        Assert.Equal(sharedFirst, sharedSecond);
        Assert.Equal(RequestStatus.Succeeded, first.Status);
        Assert.Equal(RequestStatus.Succeeded, second.Status);
        await AssertAllTerminalAsync(database);
    }

    [Fact]
    public async Task A_small_group_is_served_within_five_calls_despite_a_backlog_of_20000_in_another()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 10, 0, 0, TimeSpan.Zero));
        await using var gong = await StartGongAsync(configure: o => o.Faults.LatencyMinMs = o.Faults.LatencyMaxMs = 20);
        await SeedRequestAsync(database, "big-1", Flow, "a@example.com", Ids("a", 10_000), clock.GetUtcNow());
        await SeedRequestAsync(database, "big-2", Flow, "a@example.com", Ids("b", 10_000), clock.GetUtcNow());

        using var host = BuildWorker(output, database.ConnectionString, vhost, gong, clock, [new("Dispatch:MaxConcurrentBatches", "2")]);
        await host.StartAsync();
        // The gate's slots are on the fake clock: each poll round moves it 20 ms (below half the gate's margin).
        void Tick() => clock.Advance(TimeSpan.FromMilliseconds(20));
        await Poll.UntilAsync(() => gong.Calls().Count >= 3, Timeout, "group A under way", Tick);
        var seededAt = DateTimeOffset.UtcNow; // the simulator's clock: calls that reached Gong before group B existed
        await SeedRequestAsync(database, "small", "42", "b@example.com", ["only"], clock.GetUtcNow());
        clock.Advance(TimeSpan.FromSeconds(2));

        await Poll.UntilAsync(() => events.For("small") is not null, Timeout, "group B's event", Tick);
        var calls = gong.Calls();
        var callsBefore = calls.Count(c => c.Time < seededAt);
        var smallIndex = calls.Select((c, i) => (c, i)).Single(x => x.c.FlowId == "42").i;
        Assert.InRange(smallIndex, callsBefore, callsBefore + 4);

        await Poll.UntilAsync(() => events.Received.Count == 3, TimeSpan.FromMinutes(3), "group A drained", Tick);
        await host.StopAsync();
        Assert.Equal(101, gong.Calls().Count);
        gong.AssertAssignedOnce(20_001);
        await AssertAllTerminalAsync(database);
    }

    [Fact]
    public async Task A_batch_whose_dispatcher_died_after_sending_is_reconciled_by_the_other_and_assigned_once()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        var connection = new Npgsql.NpgsqlConnectionStringBuilder(database.ConnectionString);
        await using var proxy = new TcpProxy(connection.Host!, connection.Port);
        var viaProxy = new Npgsql.NpgsqlConnectionStringBuilder(database.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port, Pooling = false }.ConnectionString;

        var sentByDoomed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var gong = await StartGongAsync();
        var assigns = 0;
        // Gong commits the first call, then its answer never reaches the dispatcher that made it.
        gong.State.AfterCommit = async (_, ct) =>
        {
            if (Interlocked.Increment(ref assigns) == 1)
            {
                sentByDoomed.TrySetResult();
                await Task.Delay(System.Threading.Timeout.InfiniteTimeSpan, ct);
            }
        };
        var ids = Ids("d", 20);
        await SeedRequestAsync(database, "doomed", Flow, "owner@example.com", ids, DateTimeOffset.UtcNow - TimeSpan.FromSeconds(5));
        var lease = new KeyValuePair<string, string?>("Dispatch:LeaseDuration", "00:00:03");
        // The reclaimer looks the batch up only once its call can no longer commit: 2 s + 0.2 s after the reclaim here.
        KeyValuePair<string, string?>[] settle = [new("Gong:AttemptTimeout", "00:00:02"), new("Gong:ReconcileDelay", "00:00:00.200")];

        using var doomed = BuildWorker(output, viaProxy, vhost, gong, settings: [lease, .. settle, new("Dispatch:ReplicaName", "doomed")], shutdownTimeout: TimeSpan.FromSeconds(2));
        await doomed.StartAsync();
        await sentByDoomed.Task.WaitAsync(Timeout);
        proxy.Cut();

        using var survivor = BuildWorker(output, database.ConnectionString, vhost, gong, settings: [lease, .. settle, new("Dispatch:ReplicaName", "survivor")]);
        await survivor.StartAsync();
        await Poll.UntilAsync(() => events.For("doomed") is not null, Timeout, "the reconciled request's event");

        proxy.Restore();
        await doomed.StopAsync();
        await survivor.StopAsync();

        // The doomed assign (committed, its answer lost), then the survivor's reconcile-first lookup of every id,
        // which finds them all in the flow: nothing is assigned again.
        var calls = gong.Calls();
        Assert.Equal(2, calls.Count);
        Assert.Equal((SimulatorEndpoints.Assign, true), (calls[0].Endpoint, calls[0].Committed));
        var retry = calls[1];
        Assert.Equal((SimulatorEndpoints.Lookup, 200, ids.Length), (retry.Endpoint, retry.Status, retry.Assigned));
        Assert.Equal(ids, retry.Ids.Order(StringComparer.Ordinal));
        gong.AssertAssignedOnce(ids.Length);
        var message = events.For("doomed")!;
        Assert.Equal(RequestStatus.Succeeded, message.Status);
        Assert.Single(events.Received);

        await using var db = database.CreateDbContext();
        var rows = await db.ProspectAssignments.ToListAsync();
        Assert.All(rows, r =>
        {
            Assert.Equal(ProspectAssignmentStatus.Assigned, r.Status);
            Assert.True(r.Reconciled);
            Assert.False(r.ReconcileFirst);
        });
        var batches = await db.DispatchBatches.OrderBy(b => b.ClaimedAt).ToListAsync();
        Assert.Equal(["doomed", "survivor"], batches.Select(b => b.ClaimedBy));
        Assert.True(batches[0].Reclaimed);
        Assert.True(batches[1].ClaimedAt >= batches[0].CompletedAt!.Value + TimeSpan.FromSeconds(2.2), "looked up only once the doomed call was settled");
        await AssertAllTerminalAsync(database);
    }
}
