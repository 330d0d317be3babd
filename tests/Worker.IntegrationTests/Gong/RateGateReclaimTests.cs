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
    public async Task A_late_slot_moves_to_now_and_the_slot_whose_window_starts_at_it_is_computed_from_the_move()
    {
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var replica = await GongReplica.StartAsync(database.ConnectionString, "http://127.0.0.1:9/", TimeProvider.System,
            [new("Gong:RequestsPerSecond", "3")]);
        var gate = replica.Gate;
        var first = await gate.WaitForSlotAsync(Margin, CancellationToken.None);
        Assert.True(first.Taken);

        // 150 ms late (beyond the 10 ms a caller may start after its slot), nothing sent yet.
        await Task.Delay(150);
        var moved = await gate.ReclaimAsync(first, CancellationToken.None);

        Assert.NotNull(moved);
        var lateBy = moved.ScheduledAt - first.ScheduledAt;
        Assert.True(lateBy >= TimeSpan.FromMilliseconds(150), $"moved by {lateBy.TotalMilliseconds:0} ms");
        Assert.Equal(1, gate.SlotsReclaimed);
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
        Assert.Equal(1, gate.SlotsReclaimed);
    }

    [Fact]
    public async Task A_slot_does_not_move_into_a_429_block()
    {
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var replica = await GongReplica.StartAsync(database.ConnectionString, "http://127.0.0.1:9/", TimeProvider.System,
            [new("Gong:RequestsPerSecond", "3")]);
        var slot = await replica.Gate.WaitForSlotAsync(Margin, CancellationToken.None);

        await replica.Gate.BlockAsync(DateTimeOffset.UtcNow + TimeSpan.FromSeconds(30), "429 from another replica", CancellationToken.None);

        Assert.Null(await replica.Gate.ReclaimAsync(slot, CancellationToken.None));
    }

    [Fact]
    public async Task Calls_held_in_the_HTTP_pipeline_past_their_slot_move_it_and_draw_no_429_at_the_door()
    {
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var simulator = await GongSimulatorApp.StartAsync(new SimulatorOptions
        {
            AccessKey = "test-key",
            AccessKeySecret = "test-secret",
            RateLimit = new RateLimitOptions { RequestsPerSecond = 10, DailyCallLimit = 0 },
        });

        // Every fourth assign call is held 60 ms after the gate let it go: past its latest start (slot + 10 ms).
        var posts = 0;
        await using var replica = await GongReplica.StartAsync(database.ConnectionString, simulator.BaseUrl.ToString(), TimeProvider.System,
            [new("Gong:RequestsPerSecond", "10")],
            services => services.AddHttpClient<GongApiClient>().AddHttpMessageHandler(() => new PipelineHoldHandler(request =>
                request.Method == HttpMethod.Post && Interlocked.Increment(ref posts) % 4 == 0 ? TimeSpan.FromMilliseconds(60) : TimeSpan.Zero)));
        var stopwatch = Stopwatch.StartNew();
        var sequence = 0;

        await Task.WhenAll(Enumerable.Range(0, 3).Select(async _ =>
        {
            while (simulator.State.GetStats().TotalCalls < 60)
            {
                var id = $"held-{Interlocked.Increment(ref sequence):0000}";
                var result = await replica.Sender.SendAsync(GongReplica.Batch([id]), CancellationToken.None);
                Assert.Equal(ProspectResultKind.Assigned, Assert.Single(result.Prospects).Kind);
            }
        }));

        var stats = simulator.State.GetStats();
        var calls = simulator.State.GetCalls();
        var log = string.Join(" ", calls.Select(c => $"{(c.Time - calls[0].Time).TotalSeconds:0.000}:{c.Status}"));
        var seen = $"{stats.TotalCalls} calls in {stopwatch.Elapsed.TotalSeconds:0.0} s, {replica.Gate.SlotsReclaimed} slots moved, {replica.Gate.SlotsGivenUp} given up: {log}";
        Assert.True(stats.RateLimitedCalls == 0, $"{stats.RateLimitedCalls} 429s ({stats.SelfCausedRateLimited} self-caused); {seen}");
        Assert.True(stats.MaxCallsInAnyOneSecond <= 10, $"max {stats.MaxCallsInAnyOneSecond} in one second; {seen}");
        Assert.True(replica.Gate.SlotsReclaimed >= 10, seen);
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);
    }
}
