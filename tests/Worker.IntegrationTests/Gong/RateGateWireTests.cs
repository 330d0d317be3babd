using Gong.Simulator;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Worker.Host.Gong;
using Worker.Testing;

namespace Worker.IntegrationTests.Gong;

/// <summary>
/// The rate gate's timing taken at the connection lane, the last step before the wire (<see cref="GongConnectionLanes"/>):
/// a call's latest start is checked after the whole HTTP pipeline ran, a warm-up's round trip is measured without the
/// pipeline's own time, and the first warm-up learns the jitter with uncounted requests. A delaying handler in the
/// Gong HttpClient's pipeline stands for a GC pause or a descheduled thread between the gate and the wire. Real
/// Postgres, the simulator in-process.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class RateGateWireTests
{
    [Fact]
    public async Task A_call_held_up_in_the_HTTP_pipeline_past_its_latest_start_sends_nothing()
    {
        await using var world = await World.StartAsync(_ => TimeSpan.FromMilliseconds(150));
        var client = world.Replica.Services.GetRequiredService<GongApiClient>();
        using var lease = world.Replica.Services.GetRequiredService<GongConnectionLanes>().Acquire();

        var late = await client.AssignAsync(GongReplica.FlowId, GongReplica.Owner, ["late-1"], lease.Lane, DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(40), CancellationToken.None);
        Assert.True(late.Kind == GongCallKind.LateForSlot, $"{late.Kind}: {late.Error}");
        Assert.Equal(0, world.Simulator.State.GetStats().TotalCalls);

        // The same call with time to spare goes through the same pipeline and lane.
        var onTime = await client.AssignAsync(GongReplica.FlowId, GongReplica.Owner, ["late-1"], lease.Lane, DateTimeOffset.UtcNow + TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.True(onTime.Kind == GongCallKind.Answered, $"{onTime.Kind}: {onTime.Error}");
        Assert.Equal(1, world.Simulator.State.GetStats().TotalCalls);
        Assert.Equal(0, world.Simulator.State.GetStats().DuplicateOfApiAssignmentAttempts);
    }

    [Fact]
    public async Task The_first_warm_up_learns_the_jitter_without_spending_a_call()
    {
        await using var world = await World.StartAsync(_ => TimeSpan.Zero, new FaultOptions { ArrivalJitterMs = 30 });
        var pacing = world.Replica.Services.GetRequiredService<RateGatePacing>();
        var client = world.Replica.Services.GetRequiredService<GongApiClient>();
        using var lease = world.Replica.Services.GetRequiredService<GongConnectionLanes>().Acquire();
        Assert.False(pacing.Learned);

        var warmUp = await client.WarmUpAsync(lease.Lane, CancellationToken.None);

        Assert.True(warmUp.Answered);
        Assert.True(pacing.Learned, $"margin {pacing.Margin.TotalMilliseconds:0} ms ({pacing.MarginSource}) after the first warm-up");
        Assert.Equal(0, world.Simulator.State.GetStats().TotalCalls);
    }

    [Fact]
    public async Task Time_spent_in_the_HTTP_pipeline_is_not_taken_for_network_jitter()
    {
        // Warm-ups held 0–400 ms in the pipeline (a busy machine); the network (loopback, no jitter) is steady. Measured
        // around the pipeline, the spread of 30 such round trips is about 370 ms.
        var random = new Random(7);
        await using var world = await World.StartAsync(r => r.Method == HttpMethod.Head ? TimeSpan.FromMilliseconds(random.Next(0, 400)) : TimeSpan.Zero);
        var pacing = world.Replica.Services.GetRequiredService<RateGatePacing>();
        var client = world.Replica.Services.GetRequiredService<GongApiClient>();
        var margin = world.Replica.Services.GetRequiredService<IOptions<GongOptions>>().Value.RateWindowMargin;
        using var lease = world.Replica.Services.GetRequiredService<GongConnectionLanes>().Acquire();

        for (var i = 0; i < 30; i++)
        {
            Assert.True((await client.WarmUpAsync(lease.Lane, CancellationToken.None)).Answered);
        }

        var jitter = pacing.Margin - margin;
        Assert.Equal("learned", pacing.MarginSource);
        Assert.True(jitter < TimeSpan.FromMilliseconds(200), $"learned jitter allowance {jitter.TotalMilliseconds:0} ms for 0–400 ms spent in the pipeline");
    }

    private sealed class World(TestDatabase database, RunningSimulator simulator, GongReplica replica) : IAsyncDisposable
    {
        public RunningSimulator Simulator => simulator;

        public GongReplica Replica => replica;

        public static async Task<World> StartAsync(Func<HttpRequestMessage, TimeSpan> hold, FaultOptions? faults = null)
        {
            var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
            var simulator = await GongSimulatorApp.StartAsync(new SimulatorOptions
            {
                AccessKey = "test-key",
                AccessKeySecret = "test-secret",
                RateLimit = new RateLimitOptions { RequestsPerSecond = 10, DailyCallLimit = 0 },
                Faults = faults ?? new FaultOptions(),
            });
            var replica = await GongReplica.StartAsync(database.ConnectionString, simulator.BaseUrl.ToString(), TimeProvider.System,
                configure: services => services.AddHttpClient<GongApiClient>().AddHttpMessageHandler(() => new PipelineHoldHandler(hold)));
            return new World(database, simulator, replica);
        }

        public async ValueTask DisposeAsync()
        {
            await replica.DisposeAsync();
            await simulator.DisposeAsync();
            await database.DisposeAsync();
        }
    }
}
