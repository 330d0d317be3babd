using System.Diagnostics;
using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Testing;

namespace Worker.IntegrationTests.Gong;

/// <summary>
/// A call whose request reaches its connection late (a stall after the lane's latest-start check: a GC pause, a
/// descheduled thread, a slow body) arrives later than the gate recorded; the gate moves its recorded arrival so the
/// slot a second later is spaced from the real one. Against real Postgres and, end to end, the simulator counting
/// arrivals in any sliding second.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class RateGateDepartureTests
{
    private static readonly TimeSpan Margin = TimeSpan.FromMilliseconds(20);

    [Fact]
    public async Task A_late_departure_moves_the_recorded_arrival_and_the_slot_a_second_later_is_spaced_from_it()
    {
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var replica = await GongReplica.StartAsync(database.ConnectionString, "http://127.0.0.1:9/", TimeProvider.System, [new("Gong:RequestsPerSecond", "3")]);
        var gate = replica.Gate;
        var first = await gate.WaitForSlotAsync(Margin, CancellationToken.None);

        // On time (within the latest start): nothing to do (null), nothing moves.
        Assert.Null(await gate.DepartedAsync(first, first.StartNoLaterThan, CancellationToken.None));
        Assert.Equal((0, 0), gate.LateDepartures);

        // 80 ms after the slot: the recorded latest arrival moves 80 ms later.
        var departed = first.At + TimeSpan.FromMilliseconds(80);
        Assert.Equal(true, await gate.DepartedAsync(first, departed, CancellationToken.None));
        Assert.Equal((1, 0), gate.LateDepartures);
        await using (var db = database.CreateDbContext())
        {
            var starts = (await db.RateGates.AsNoTracking().SingleAsync()).RecentStarts;
            var expected = first.ScheduledAt + TimeSpan.FromMilliseconds(80) + Margin;
            Assert.Contains(starts, s => Math.Abs((s - expected).TotalMilliseconds) < 0.01);
            Assert.DoesNotContain(starts, s => Math.Abs((s - (first.ScheduledAt + Margin)).TotalMilliseconds) < 0.01);
        }

        // The third slot after it opens a second after the real arrival, not the one recorded at the take.
        var next = new List<GateSlot>();
        for (var i = 0; i < 3; i++)
        {
            next.Add(await gate.WaitForSlotAsync(Margin, CancellationToken.None));
        }

        var window = next[2].ScheduledAt - (first.ScheduledAt + TimeSpan.FromMilliseconds(80) + Margin);
        Assert.True(window >= TimeSpan.FromSeconds(1), $"third slot after the late call starts {window.TotalMilliseconds:0} ms after its real latest arrival");

        // Now a slot depends on it: too late to move, and counted as such.
        Assert.Equal(false, await gate.DepartedAsync(first, departed + TimeSpan.FromMilliseconds(10), CancellationToken.None));
        Assert.Equal((1, 1), gate.LateDepartures);
    }

    [Fact]
    public async Task Calls_stalled_between_the_lane_check_and_the_socket_draw_no_429_at_the_door()
    {
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var simulator = await GongReplica.StartSimulatorAsync(5);

        // Every fourth assign call's body waits 80 ms before it is written: the lane's check passed on time, the request
        // reaches the socket 80 ms after its slot, beyond its margin (RateWindowMargin 30 ms here plus the few ms a quiet
        // loopback teaches: wide enough that this test process's own scheduling noise, up to 15 ms seen in CI, does not
        // count). Without the correction a run draws a 429 within seconds. At 5 calls/s the stall plus a slot's move
        // (at most 100 ms) stays under the 200 ms spacing: a longer one can leave the moved arrival later than the next
        // call's, which the window rule, reading calls in slot order, does not see (RateGateRow.DepartedLateSql).
        var posts = 0;
        await using var replica = await GongReplica.StartAsync(database.ConnectionString, simulator.BaseUrl.ToString(), TimeProvider.System,
            [new("Gong:RequestsPerSecond", "5"), new("Gong:RateWindowMargin", "00:00:00.030")],
            services => services.AddHttpClient<GongApiClient>().AddHttpMessageHandler(() => new ContentStallHandler(request =>
                request.Method == HttpMethod.Post && Interlocked.Increment(ref posts) % 4 == 0 ? TimeSpan.FromMilliseconds(80) : TimeSpan.Zero)));
        var stopwatch = Stopwatch.StartNew();

        var outcomes = await replica.SendOneByOneAsync(simulator, calls: 50, prefix: "stalled-");

        var stats = simulator.State.GetStats();
        var (moved, unmoved) = replica.Gate.LateDepartures;
        var seen = $"{stats.TotalCalls} calls in {stopwatch.Elapsed.TotalSeconds:0.0} s, late departures {moved} moved, {unmoved} too late to move: {GongReplica.ArrivalLog(simulator)}";
        await using (var db = database.CreateDbContext())
        {
            seen += "\n" + await Dispatch.DispatchHarness.DescribeCallsAsync(simulator.State.GetCalls(), db);
        }

        Assert.True(stats.RateLimitedCalls == 0, $"{stats.RateLimitedCalls} 429s ({stats.SelfCausedRateLimited} self-caused); {seen}");
        Assert.True(stats.MaxCallsInAnyOneSecond <= 5, $"max {stats.MaxCallsInAnyOneSecond} in one second; {seen}");
        Assert.True(moved >= 10, seen);
        Assert.All(outcomes, kind => Assert.Equal(ProspectResultKind.Assigned, kind));
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);
    }

    /// <summary>Gives the requests it picks a body that stalls before it is written (<see cref="SlowContent"/>).</summary>
    private sealed class ContentStallHandler(Func<HttpRequestMessage, TimeSpan> stall) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Content is { } content && stall(request) is var delay && delay > TimeSpan.Zero)
            {
                var slow = new SlowContent(content, delay);
                foreach (var header in content.Headers)
                {
                    slow.Headers.TryAddWithoutValidation(header.Key, header.Value);
                }

                request.Content = slow;
            }

            return base.SendAsync(request, cancellationToken);
        }
    }
}
