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

    [Fact]
    public async Task Time_the_HTTP_stack_takes_after_the_first_bytes_of_the_response_is_not_taken_for_network_jitter()
    {
        // A server that sends each response's status line at once and the rest of its headers 0–400 ms later: the request
        // reached it at once every time (the way out is steady), only the way back varies. Measured to the response
        // headers, the spread of 30 such round trips is about 370 ms; measured to the first bytes read, a few ms.
        await using var server = TrickleServer.Start(new Random(11));
        await using var database = await (await TestServices.GetAsync()).CreateDatabaseAsync();
        await using var replica = await GongReplica.StartAsync(database.ConnectionString, server.BaseUrl, TimeProvider.System);
        var pacing = replica.Services.GetRequiredService<RateGatePacing>();
        var client = replica.Services.GetRequiredService<GongApiClient>();
        var margin = replica.Services.GetRequiredService<IOptions<GongOptions>>().Value.RateWindowMargin;
        using var lease = replica.Services.GetRequiredService<GongConnectionLanes>().Acquire();
        for (var i = 0; i < 8; i++)
        {
            // A grown process (8 calls sent): its margin is the base plus what it learned, without the young floor.
            pacing.RecordCallSent();
        }

        var slowest = TimeSpan.Zero;
        for (var i = 0; i < 30; i++)
        {
            var warmUp = await client.WarmUpAsync(lease.Lane, CancellationToken.None);
            Assert.True(warmUp.Answered);
            slowest = warmUp.RoundTrip > slowest ? warmUp.RoundTrip : slowest;
        }

        var jitter = pacing.Margin - margin;
        Assert.Equal("learned", pacing.MarginSource);
        Assert.True(slowest > TimeSpan.FromMilliseconds(300), $"the slowest answer took {slowest.TotalMilliseconds:0} ms to its headers: the server did not trickle");
        Assert.True(jitter < TimeSpan.FromMilliseconds(100), $"learned jitter allowance {jitter.TotalMilliseconds:0} ms for headers trickling in over 0–400 ms after the first bytes");
        Assert.True(server.Requests >= 30, $"{server.Requests} requests reached the server");
    }

    /// <summary>A loopback HTTP/1.1 server (keep-alive) that answers every request 200 with an empty body, writing the
    /// status line at once and the rest of the headers a random 0–400 ms later.</summary>
    private sealed class TrickleServer : IAsyncDisposable
    {
        private readonly System.Net.Sockets.TcpListener listener;
        private readonly CancellationTokenSource stop = new();
        private readonly Task accepting;
        private int requests;

        private TrickleServer(Random random)
        {
            listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            listener.Start();
            accepting = AcceptAsync(random);
        }

        public string BaseUrl => $"http://127.0.0.1:{((System.Net.IPEndPoint)listener.LocalEndpoint).Port}/";

        public int Requests => Volatile.Read(ref requests);

        public static TrickleServer Start(Random random) => new(random);

        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            listener.Stop();
            try
            {
                await accepting;
            }
            catch (Exception ex) when (ex is OperationCanceledException or System.Net.Sockets.SocketException or ObjectDisposedException)
            {
                // Stopped.
            }

            stop.Dispose();
        }

        private async Task AcceptAsync(Random random)
        {
            while (!stop.IsCancellationRequested)
            {
                var connection = await listener.AcceptTcpClientAsync(stop.Token);
                _ = ServeAsync(connection, random);
            }
        }

        private async Task ServeAsync(System.Net.Sockets.TcpClient connection, Random random)
        {
            using var client = connection;
            var stream = client.GetStream();
            var buffer = new byte[8192];
            var pending = new List<byte>();
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    // One request: headers up to the blank line, then a body of Content-Length bytes.
                    int end;
                    while ((end = IndexOfBlankLine(pending)) < 0)
                    {
                        var read = await stream.ReadAsync(buffer, stop.Token);
                        if (read == 0)
                        {
                            return;
                        }

                        pending.AddRange(buffer.AsSpan(0, read));
                    }

                    var head = System.Text.Encoding.ASCII.GetString([.. pending.GetRange(0, end)]);
                    var length = head.Split("\r\n").Where(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                        .Select(l => int.Parse(l["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
                    while (pending.Count < end + 4 + length)
                    {
                        var read = await stream.ReadAsync(buffer, stop.Token);
                        if (read == 0)
                        {
                            return;
                        }

                        pending.AddRange(buffer.AsSpan(0, read));
                    }

                    pending.RemoveRange(0, end + 4 + length);
                    Interlocked.Increment(ref requests);
                    await stream.WriteAsync("HTTP/1.1 200 OK\r\n"u8.ToArray(), stop.Token);
                    int hold;
                    lock (random)
                    {
                        hold = random.Next(0, 400);
                    }

                    await Task.Delay(hold, stop.Token);
                    await stream.WriteAsync("Content-Length: 0\r\n\r\n"u8.ToArray(), stop.Token);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Sockets.SocketException)
            {
                // The client or the server went away.
            }
        }

        private static int IndexOfBlankLine(List<byte> bytes)
        {
            for (var i = 0; i + 3 < bytes.Count; i++)
            {
                if (bytes[i] == '\r' && bytes[i + 1] == '\n' && bytes[i + 2] == '\r' && bytes[i + 3] == '\n')
                {
                    return i;
                }
            }

            return -1;
        }
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
