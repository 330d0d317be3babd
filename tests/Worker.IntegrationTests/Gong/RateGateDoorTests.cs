using System.Collections.Concurrent;
using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Testing;

namespace Worker.IntegrationTests.Gong;

/// <summary>
/// The shared rate gate measured where Gong counts: arrivals at the simulator, which counts every call (assign and
/// lookup) by arrival time in any sliding one-second window, after its network knobs (arrival jitter, handshake delay
/// on each new connection). Replicas are real <c>AddGongClient</c> hosts on one test database, started cold (new
/// connections, new lanes). Shortened settings: 10 calls/s on both sides, so each scenario takes seconds.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class RateGateDoorTests
{
    private const int CallsPerSecond = 10;

    [Fact]
    public async Task Three_replicas_started_together_with_jitter_and_handshake_delay_draw_no_429_in_150_calls()
    {
        await using var world = await World.StartAsync(faults: new FaultOptions { ArrivalJitterMs = 80, NewConnectionDelayMs = 150 });
        var replicas = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => world.StartReplicaAsync(TimeProvider.System)));

        await world.DrainAsync(replicas, calls: 150);

        world.AssertNoRateLimit(minimumCalls: 150);
        foreach (var replica in replicas)
        {
            await replica.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_replica_restarted_mid_drain_draws_no_429()
    {
        await using var world = await World.StartAsync(faults: new FaultOptions { ArrivalJitterMs = 30, NewConnectionDelayMs = 120 });
        await using var steady = await world.StartReplicaAsync(TimeProvider.System);
        var restarted = await world.StartReplicaAsync(TimeProvider.System);

        await world.DrainAsync([steady, restarted], calls: 50);
        await restarted.DisposeAsync();
        await using var fresh = await world.StartReplicaAsync(TimeProvider.System);
        await world.DrainAsync([steady, fresh], calls: 60);

        world.AssertNoRateLimit(minimumCalls: 110);
    }

    [Fact]
    public async Task Replicas_whose_clocks_differ_by_200_ms_draw_no_429()
    {
        // Base margin 20 ms (default 10), as in DispatchPacingTests: three replicas, nine sends and the simulator share
        // this process's scheduler and GC, and two runs of this test (one on the code before the departure watch, one in
        // CI) each saw one call stamped 12-14 ms after its neighbours' rhythm and one 429 in 158 calls. What is tested
        // here is the skew: 200 ms between clocks is twenty times that margin.
        await using var world = await World.StartAsync(faults: new FaultOptions(), settings: [new("Gong:RateWindowMargin", "00:00:00.020")]);
        var replicas = await Task.WhenAll(
            world.StartReplicaAsync(new OffsetTimeProvider(TimeSpan.FromMilliseconds(-100))),
            world.StartReplicaAsync(TimeProvider.System),
            world.StartReplicaAsync(new OffsetTimeProvider(TimeSpan.FromMilliseconds(100))));

        await world.DrainAsync(replicas, calls: 150);

        world.AssertNoRateLimit(minimumCalls: 150);
        foreach (var replica in replicas)
        {
            await replica.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_limit_of_100_is_learned_once_for_every_replica_and_a_drain_uses_the_minimum_calls_plus_one_400_per_replica()
    {
        await using var world = await World.StartAsync(faults: new FaultOptions { BatchLimit = 100 });
        var replicas = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => world.StartReplicaAsync(TimeProvider.System)));
        int[] sizes = [200, 200, 200, 200, 200, 200, 150, 60];
        var batches = new ConcurrentQueue<AssignmentBatch>(sizes.Select((n, b) => GongReplica.Batch(GongReplica.Ids($"limit-{b}-", n))));
        var results = new ConcurrentBag<BatchResult>();

        // Two replicas, two sends each in flight, as dispatchers would run them.
        await Task.WhenAll(replicas.SelectMany(replica => Enumerable.Range(0, 2).Select(async _ =>
        {
            while (batches.TryDequeue(out var batch))
            {
                results.Add(await replica.Sender.SendAsync(batch, CancellationToken.None));
            }
        })));

        var stats = world.Simulator.State.GetStats();
        var calls = world.Simulator.State.GetCalls();
        var refused = calls.Count(c => c.Status == 400);
        var answered = calls.Count(c => c.Status == 200);
        var minimum = sizes.Sum(n => (n + 99) / 100);
        Assert.True(answered == minimum, $"{answered} answered assigns, minimum {minimum}; sizes {string.Join(",", calls.Select(c => $"{c.IdsCount}:{c.Status}"))}");
        Assert.True(refused <= replicas.Length, $"{refused} 400s for {replicas.Length} replicas");
        Assert.True(refused >= 1, "the limit must have been met once");
        Assert.All(results.SelectMany(r => r.Prospects), p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        Assert.Equal(sizes.Sum(), stats.AssignmentsCount);
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);
        Assert.Equal(100, stats.LargestAssignBatch);

        await using var db = world.Database.CreateDbContext();
        var gate = await db.RateGates.SingleAsync();
        Assert.Equal(100, gate.LearnedBatchLimit);
        Assert.NotNull(gate.BatchLimitLearnedAt);
        Assert.Contains("100", gate.BatchLimitReason, StringComparison.Ordinal);
        foreach (var replica in replicas)
        {
            await replica.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_call_of_MaxBatchSize_answered_in_one_replica_lets_another_send_that_size_without_waiting_for_its_own_answer()
    {
        // Every answer takes 1.5 s: a replica that waited for its own first answer would send its second call that late.
        await using var world = await World.StartAsync(faults: new FaultOptions { LatencyMinMs = 1500, LatencyMaxMs = 1500 });
        await using var first = await world.StartReplicaAsync(TimeProvider.System);
        await using var second = await world.StartReplicaAsync(TimeProvider.System);
        await first.Sender.SendAsync(GongReplica.Batch(GongReplica.Ids("proof-a-", 200)), CancellationToken.None);

        await using (var db = world.Database.CreateDbContext())
        {
            var gate = await db.RateGates.SingleAsync();
            Assert.Equal(200, gate.LearnedBatchLimit);
            Assert.Contains("was answered", gate.BatchLimitReason, StringComparison.Ordinal);
        }

        var results = await Task.WhenAll(
            second.Sender.SendAsync(GongReplica.Batch(GongReplica.Ids("proof-b-", 200)), CancellationToken.None),
            second.Sender.SendAsync(GongReplica.Batch(GongReplica.Ids("proof-c-", 200)), CancellationToken.None));

        Assert.All(results.SelectMany(r => r.Prospects), p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        var calls = world.Simulator.State.GetCalls();
        Assert.Equal(3, calls.Count);
        var apart = calls[2].Time - calls[1].Time;
        Assert.True(apart < TimeSpan.FromMilliseconds(1000), $"the second replica's two calls arrived {apart.TotalMilliseconds:F0} ms apart");
    }

    [Fact]
    public async Task A_limit_proven_by_bisection_is_learned_when_the_400_does_not_name_it()
    {
        // The simulator's own size 400 names the limit; a message that does not is a scripted plain 400.
        await using var world = await World.StartAsync(faults: new FaultOptions { Script = [new ScriptedFault { Kind = FaultKind.BadRequest }] });
        await using var replica = await world.StartReplicaAsync(TimeProvider.System);
        var first = await replica.Sender.SendAsync(GongReplica.Batch(GongReplica.Ids("bisect-a-", 200)), CancellationToken.None);
        var second = await replica.Sender.SendAsync(GongReplica.Batch(GongReplica.Ids("bisect-b-", 200)), CancellationToken.None);

        Assert.All(first.Prospects.Concat(second.Prospects), p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        var calls = world.Simulator.State.GetCalls();
        Assert.Equal([(200, 400), (100, 200), (100, 200), (100, 200), (100, 200)], calls.Select(c => (c.IdsCount, c.Status)));
        await using var db = world.Database.CreateDbContext();
        var gate = await db.RateGates.SingleAsync();
        Assert.Equal(100, gate.LearnedBatchLimit);
        Assert.StartsWith("bisection", gate.BatchLimitReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Another_integration_spending_1_call_per_second_gets_few_429s_and_our_rate_settles_near_2()
    {
        await using var world = await World.StartAsync(
            faults: new FaultOptions { ForeignCallsPerSecond = 1 },
            rateLimit: 3,
            settings: [new("Gong:RateIncreaseInterval", "00:00:02"), new("Gong:RetryAfterMargin", "00:00:00.200")]);
        await using var replica = await world.StartReplicaAsync(TimeProvider.System);
        // 45 s: the allowed rate saws between a cut (x0.7) and the climb back, so its mean is read over the last 30 s.
        var end = DateTime.UtcNow + TimeSpan.FromSeconds(45);

        await world.DrainAsync([replica], calls: int.MaxValue, until: end);

        var calls = world.Simulator.State.GetCalls();
        var stats = world.Simulator.State.GetStats();
        var lateHalf = calls.Where(c => c.Time >= calls[^1].Time - TimeSpan.FromSeconds(30)).ToList();
        var rate = lateHalf.Count(c => c.Status == 200) / 30.0;
        var (allowed, reason) = replica.Gate.AllowedRate;
        var log = string.Join(" ", calls.Where(c => c.Status == 429).Select(c => $"{(c.Time - calls[0].Time).TotalSeconds:0.0}"));
        Assert.True(stats.SelfCausedRateLimited == 0, $"self-caused 429s: {stats.SelfCausedRateLimited}");
        Assert.True(stats.RateLimitedCalls is >= 1 and <= 9, $"{stats.RateLimitedCalls} 429s in 45 s (at most 6 per 30 s) at {log}");
        Assert.True(rate is >= 1.5 and <= 2.2, $"our rate over the last 30 s: {rate:0.00} calls/s (allowed {allowed:0.00}, {reason}); 429s at {log}");
        Assert.True(allowed < 3, $"allowed rate {allowed} should have yielded");
    }

    /// <summary>A clock that is <paramref name="offset"/> ahead of (or behind) the system clock; timers run in real time.</summary>
    private sealed class OffsetTimeProvider(TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + offset;
    }

    private sealed class World : IAsyncDisposable
    {
        private readonly IEnumerable<KeyValuePair<string, string?>> settings;
        private int sequence;

        private World(TestDatabase database, RunningSimulator simulator, IEnumerable<KeyValuePair<string, string?>> settings)
        {
            Database = database;
            Simulator = simulator;
            this.settings = settings;
        }

        public TestDatabase Database { get; }

        public RunningSimulator Simulator { get; }

        public static async Task<World> StartAsync(FaultOptions faults, int rateLimit = CallsPerSecond, IEnumerable<KeyValuePair<string, string?>>? settings = null)
        {
            var services = await TestServices.GetAsync();
            var database = await services.CreateDatabaseAsync();
            HeapSettle.Now();
            var simulator = await GongSimulatorApp.StartAsync(new SimulatorOptions
            {
                AccessKey = "test-key",
                AccessKeySecret = "test-secret",
                RateLimit = new RateLimitOptions { RequestsPerSecond = rateLimit, DailyCallLimit = 0 },
                Faults = faults,
            });
            return new World(database, simulator, [
                new("Gong:RequestsPerSecond", rateLimit.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                .. settings ?? [],
            ]);
        }

        public Task<GongReplica> StartReplicaAsync(TimeProvider time) =>
            GongReplica.StartAsync(Database.ConnectionString, Simulator.BaseUrl.ToString(), time, settings);

        /// <summary>Three concurrent sends per replica, one prospect per call, until <paramref name="calls"/> more
        /// calls reached the simulator (or <paramref name="until"/>).</summary>
        public async Task DrainAsync(IReadOnlyList<GongReplica> replicas, int calls, DateTime? until = null)
        {
            var target = Simulator.State.GetStats().TotalCalls + (long)calls;
            async Task Lane(GongReplica replica)
            {
                while (Simulator.State.GetStats().TotalCalls < target && (until is null || DateTime.UtcNow < until))
                {
                    var id = $"door-{Interlocked.Increment(ref sequence):000000}";
                    var result = await replica.Sender.SendAsync(GongReplica.Batch([id]), CancellationToken.None);
                    Assert.NotEqual(ProspectResultKind.Failed, Assert.Single(result.Prospects).Kind);
                }
            }

            await Task.WhenAll(replicas.SelectMany(replica => Enumerable.Range(0, 3).Select(_ => Lane(replica))));
        }

        public void AssertNoRateLimit(int minimumCalls)
        {
            var stats = Simulator.State.GetStats();
            var calls = Simulator.State.GetCalls();
            var first = calls.Count > 0 ? calls[0].Time : default;
            var log = string.Join(" ", calls.Select(c => $"{(c.Time - first).TotalSeconds:0.000}:{c.Status}"));
            Assert.True(stats.RateLimitedCalls == 0, $"{stats.RateLimitedCalls} 429s ({stats.SelfCausedRateLimited} self-caused) in {stats.TotalCalls} calls: {log}");
            Assert.True(stats.TotalCalls >= minimumCalls, $"{stats.TotalCalls} calls");
            Assert.True(stats.MaxCallsInAnyOneSecond <= Simulator.State.RateLimit.RequestsPerSecond, $"max {stats.MaxCallsInAnyOneSecond} in one second");
            Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);
        }

        public async ValueTask DisposeAsync()
        {
            HeapSettle.EndQuiet();
            await Simulator.DisposeAsync();
            await Database.DisposeAsync();
        }
    }
}
