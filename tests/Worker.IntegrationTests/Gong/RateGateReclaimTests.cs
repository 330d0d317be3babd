using System.Diagnostics;
using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Testing;

namespace Worker.IntegrationTests.Gong;

/// <summary>
/// A caller late for its rate-gate slot (a busy machine woke it late, or the HTTP pipeline held it) moves the slot to
/// now while no later slot depends on it, instead of giving the slot up; against real Postgres and, end to end, the
/// simulator counting arrivals in any sliding second.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class RateGateReclaimTests
{
    private static readonly TimeSpan Margin = TimeSpan.FromMilliseconds(20);

    [Fact]
    public async Task A_late_slot_moves_shortly_ahead_and_the_slot_whose_window_starts_at_it_is_computed_from_the_move()
    {
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var replica = await StartGateAsync(database);
        var gate = replica.Gate;
        var first = await gate.WaitForSlotAsync(Margin, CancellationToken.None);
        Assert.True(first.Taken);

        // On a busy machine the gate may already have moved this slot once, when it woke late for it (MovedBy > 0):
        // every move is measured from the slot as taken.
        var taken = first.ScheduledAt - first.MovedBy;
        var reclaimedBefore = gate.SlotsReclaimed;

        // 60 ms late (beyond the 5 ms a caller may start after its slot), nothing sent yet: the slot moves shortly
        // ahead, at most half a spacing (167 ms) after it was taken, and the caller gets it when it has come.
        await Task.Delay(60);
        var moved = await gate.ReclaimAsync(first, CancellationToken.None);

        Assert.NotNull(moved);
        var lateBy = moved.ScheduledAt - taken;
        Assert.True(moved.ScheduledAt - first.ScheduledAt >= TimeSpan.FromMilliseconds(60), $"moved {(moved.ScheduledAt - first.ScheduledAt).TotalMilliseconds:0} ms after the slot it was asked to move");
        Assert.True(lateBy <= TimeSpan.FromMilliseconds(167), $"moved by {lateBy.TotalMilliseconds:0} ms from the slot as taken (first moved by {first.MovedBy.TotalMilliseconds:0} ms)");
        Assert.Equal(lateBy, moved.MovedBy);
        Assert.True(DateTimeOffset.UtcNow >= moved.At, $"returned {(moved.At - DateTimeOffset.UtcNow).TotalMilliseconds:0} ms before the moved slot");
        Assert.Equal(reclaimedBefore + 1, gate.SlotsReclaimed);
        await using (var db = database.CreateDbContext())
        {
            var starts = (await db.RateGates.AsNoTracking().SingleAsync()).RecentStarts;
            Assert.Contains(starts, s => Math.Abs((s - (moved.ScheduledAt + Margin)).TotalMilliseconds) < 0.01);
            Assert.DoesNotContain(starts, s => Math.Abs((s - (first.ScheduledAt + Margin)).TotalMilliseconds) < 0.01);
        }

        // The next three slots: the third is a second after the moved slot's latest arrival, not the original one's.
        var next = new List<GateSlot>();
        for (var i = 0; i < 3; i++)
        {
            next.Add(await gate.WaitForSlotAsync(Margin, CancellationToken.None));
        }

        var window = next[2].ScheduledAt - (moved.ScheduledAt + Margin);
        Assert.True(window >= TimeSpan.FromSeconds(1), $"third slot after the move starts {window.TotalMilliseconds:0} ms after the moved latest arrival");

        // Now a slot depends on it: it can no longer move, and the gate says so.
        Assert.Null(await gate.ReclaimAsync(moved, CancellationToken.None));
        Assert.Equal(reclaimedBefore + 1, gate.SlotsReclaimed);
    }

    [Fact]
    public async Task A_caller_later_than_half_a_spacing_cannot_move_its_slot()
    {
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var replica = await StartGateAsync(database);
        var slot = await replica.Gate.WaitForSlotAsync(Margin, CancellationToken.None);

        // On a busy machine the gate may already have moved this slot once, when it woke late for it (a run saw
        // SlotsReclaimed 1 here): only this caller's move is counted below.
        var reclaimedBefore = replica.Gate.SlotsReclaimed;

        // 200 ms late: moving would leave the slot taken after it less than half a spacing (167 ms), too little time
        // for a 429's block to reach it.
        await Task.Delay(200);

        Assert.Null(await replica.Gate.ReclaimAsync(slot, CancellationToken.None));
        Assert.Equal(reclaimedBefore, replica.Gate.SlotsReclaimed);
    }

    [Fact]
    public async Task A_slot_does_not_move_into_a_429_block()
    {
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var replica = await StartGateAsync(database);
        var slot = await replica.Gate.WaitForSlotAsync(Margin, CancellationToken.None);

        await replica.Gate.BlockAsync(DateTimeOffset.UtcNow + TimeSpan.FromSeconds(30), "429 from another replica", CancellationToken.None);

        Assert.Null(await replica.Gate.ReclaimAsync(slot, CancellationToken.None));
    }

    /// <summary>A replica's gate at Gong's 3 calls/s on <paramref name="database"/> (no Gong needed).</summary>
    private static Task<GongReplica> StartGateAsync(TestDatabase database) =>
        GongReplica.StartAsync(database.ConnectionString, "http://127.0.0.1:9/", TimeProvider.System, [new("Gong:RequestsPerSecond", "3")]);

    [Fact]
    public async Task Calls_held_in_the_HTTP_pipeline_past_their_slot_move_it_and_draw_no_429_at_the_door()
    {
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var simulator = await GongReplica.StartSimulatorAsync(10);

        // Every fourth assign call is held 20 ms after the gate let it go: past its latest start (slot + 5 ms), and
        // within the 40 ms a slot may move at 10 calls/s (the spacing less 60 ms).
        var posts = 0;
        await using var replica = await GongReplica.StartAsync(database.ConnectionString, simulator.BaseUrl.ToString(), TimeProvider.System,
            [new("Gong:RequestsPerSecond", "10")],
            services => services.AddHttpClient<GongApiClient>().AddHttpMessageHandler(() => new PipelineHoldHandler(request =>
                request.Method == HttpMethod.Post && Interlocked.Increment(ref posts) % 4 == 0 ? TimeSpan.FromMilliseconds(20) : TimeSpan.Zero)));
        var stopwatch = Stopwatch.StartNew();

        var outcomes = await replica.SendOneByOneAsync(simulator, calls: 60, prefix: "held-");

        var stats = simulator.State.GetStats();
        var seen = $"{stats.TotalCalls} calls in {stopwatch.Elapsed.TotalSeconds:0.0} s, {replica.Gate.SlotsReclaimed} slots moved, {replica.Gate.SlotsGivenUp} given up: {GongReplica.ArrivalLog(simulator)}";
        Assert.True(stats.RateLimitedCalls == 0, $"{stats.RateLimitedCalls} 429s ({stats.SelfCausedRateLimited} self-caused); {seen}");
        Assert.True(stats.MaxCallsInAnyOneSecond <= 10, $"max {stats.MaxCallsInAnyOneSecond} in one second; {seen}");
        Assert.All(outcomes, kind => Assert.Equal(ProspectResultKind.Assigned, kind));
        Assert.True(replica.Gate.SlotsReclaimed >= 10, seen);
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);
    }

    [Fact]
    public async Task A_young_process_s_first_calls_held_past_half_the_base_margin_keep_their_slots_and_draw_no_429()
    {
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var simulator = await GongReplica.StartSimulatorAsync(3);

        // The process's first two calls are held 20 ms after the gate let them go: a grown process may start 5 ms late
        // (half the base margin) and would move these slots; a young one is recorded with its young floor (up to
        // 110 ms) and may spend what the network and a 20 ms reserve do not need of it.
        var posts = 0;
        await using var replica = await GongReplica.StartAsync(database.ConnectionString, simulator.BaseUrl.ToString(), TimeProvider.System,
            [new("Gong:RequestsPerSecond", "3")],
            services => services.AddHttpClient<GongApiClient>().AddHttpMessageHandler(() => new PipelineHoldHandler(request =>
                request.RequestUri!.ToString().EndsWith("/assign", StringComparison.Ordinal) && Interlocked.Increment(ref posts) <= 2 ? TimeSpan.FromMilliseconds(20) : TimeSpan.Zero)));
        var pacing = replica.Services.GetRequiredService<RateGatePacing>();

        var outcomes = await replica.SendOneByOneAsync(simulator, calls: 4, prefix: "young-");

        var stats = simulator.State.GetStats();
        var seen = $"{posts} assign calls, {replica.Gate.SlotsReclaimed} slots moved, {replica.Gate.SlotsGivenUp} given up, now {pacing.ForCall(warm: true)}: {GongReplica.ArrivalLog(simulator)}";
        Assert.True(posts >= 2, seen);
        Assert.True(replica.Gate.SlotsReclaimed == 0 && replica.Gate.SlotsGivenUp == 0, seen);
        Assert.True(stats.RateLimitedCalls == 0, $"{stats.RateLimitedCalls} 429s ({stats.SelfCausedRateLimited} self-caused); {seen}");
        Assert.All(outcomes, kind => Assert.Equal(ProspectResultKind.Assigned, kind));
    }

    [Fact]
    public async Task With_pooling_off_through_a_slow_connect_every_gate_read_is_late_yet_calls_go_out_without_429()
    {
        // Every statement opens a new connection through a proxy that takes 50 ms to connect, so the block read before
        // a slot (at most 40 ms ahead) always returns after the slot: before slots could move, every slot was given up
        // and no call went out. At Gong's 3 calls/s a slot may move up to 167 ms.
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        var target = new Npgsql.NpgsqlConnectionStringBuilder(database.ConnectionString);
        await using var proxy = new TcpProxy(target.Host!, target.Port) { ConnectDelay = TimeSpan.FromMilliseconds(50) };
        var slow = new Npgsql.NpgsqlConnectionStringBuilder(database.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port, Pooling = false };
        await using var simulator = await GongReplica.StartSimulatorAsync(3);
        await using var replica = await GongReplica.StartAsync(slow.ConnectionString, simulator.BaseUrl.ToString(), TimeProvider.System,
            [new("Gong:RequestsPerSecond", "3")]);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var sequence = 0;

        await Task.WhenAll(Enumerable.Range(0, 3).Select(async _ =>
        {
            while (simulator.State.GetStats().TotalCalls < 12 && !deadline.IsCancellationRequested)
            {
                var id = $"slow-{Interlocked.Increment(ref sequence):0000}";
                await replica.Sender.SendAsync(GongReplica.Batch([id]), deadline.Token);
            }
        }));

        var stats = simulator.State.GetStats();
        var seen = $"{stats.TotalCalls} calls, {replica.Gate.SlotsReclaimed} slots moved, {replica.Gate.SlotsGivenUp} given up";
        Assert.True(stats.TotalCalls >= 12, seen);
        Assert.True(stats.RateLimitedCalls == 0, $"{stats.RateLimitedCalls} 429s; {seen}");
        Assert.True(replica.Gate.SlotsReclaimed >= 1, seen);
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);
    }
}
