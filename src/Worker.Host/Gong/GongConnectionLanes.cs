using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Worker.Host.Gong;

/// <summary>
/// This replica's connections to Gong, one per concurrent send ("lane"). A send holds its lane for all its calls, and
/// each lane keeps exactly one long-lived connection (<c>MaxConnectionsPerServer = 1</c>), so the warm-up request sent
/// just before a call leaves that very connection open and warm for the call: a call never pays a TCP/TLS handshake
/// that would make it arrive at Gong later than its rate-gate slot. A lane's connection is replaced after
/// <c>ConnectionLifetime</c>, only when a warm-up request is about to use it. Lanes are created on demand (at most one
/// per concurrent send, i.e. <c>Dispatch:MaxConcurrentBatches</c>) and live until the process stops. Thread-safe.
/// </summary>
internal sealed class GongConnectionLanes(IOptions<GongOptions> options, TimeProvider time) : IDisposable
{
    /// <summary>Request option naming the lane a request must use.</summary>
    public static readonly HttpRequestOptionsKey<GongLane> LaneKey = new("Worker.Gong.Lane");

    /// <summary>Request option marking a warm-up request (no credentials, not retried, not counted by the breaker).</summary>
    public static readonly HttpRequestOptionsKey<bool> WarmUpKey = new("Worker.Gong.WarmUp");

    private readonly Lock sync = new();
    private readonly Stack<GongLane> free = new();
    private readonly List<GongLane> all = [];
    private readonly Lazy<SocketsHttpHandler> unlaned = new(() => CreateHandler(null, time));

    /// <summary>Takes a free lane (or opens a new one); dispose the lease to give it back.</summary>
    public LaneLease Acquire()
    {
        lock (sync)
        {
            if (!free.TryPop(out var lane))
            {
                lane = new GongLane(all.Count, l => CreateHandler(l, time));
                all.Add(lane);
            }

            return new LaneLease(this, lane);
        }
    }

    /// <summary>Sends <paramref name="request"/> on its lane (or on a shared pool when it names none).</summary>
    public Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!request.Options.TryGetValue(LaneKey, out var lane))
        {
            return new HttpMessageInvoker(unlaned.Value, disposeHandler: false).SendAsync(request, cancellationToken);
        }

        if (request.Options.TryGetValue(WarmUpKey, out var warmUp) && warmUp)
        {
            // Credentials only go where they are needed; an unauthenticated request is not an API call of the company.
            request.Headers.Authorization = null;
            lane.RotateIfOlderThan(options.Value.ConnectionLifetime, time.GetUtcNow());
        }

        return lane.SendAsync(request, cancellationToken);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (sync)
        {
            foreach (var lane in all)
            {
                lane.Dispose();
            }

            all.Clear();
            free.Clear();
        }

        if (unlaned.IsValueCreated)
        {
            unlaned.Value.Dispose();
        }
    }

    private void Release(GongLane lane)
    {
        lock (sync)
        {
            if (all.Contains(lane))
            {
                free.Push(lane);
            }
        }
    }

    private static SocketsHttpHandler CreateHandler(GongLane? lane, TimeProvider time) => new()
    {
        // One connection per lane: the warm-up and the call that follows it use the same one.
        MaxConnectionsPerServer = 1,

        // Replaced by the lane at a warm-up, never under a call.
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
        ConnectTimeout = TimeSpan.FromSeconds(15),
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
                lane?.Connected(time.GetUtcNow());
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    /// <summary>A lane held by one send.</summary>
    internal sealed class LaneLease(GongConnectionLanes owner, GongLane lane) : IDisposable
    {
        private int released;

        /// <summary>The lane.</summary>
        public GongLane Lane { get; } = lane;

        /// <inheritdoc />
        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) == 0)
            {
                owner.Release(Lane);
            }
        }
    }
}

/// <summary>One connection to Gong, used by one send at a time.</summary>
internal sealed class GongLane : IDisposable
{
    private readonly Lock sync = new();
    private readonly Func<GongLane, SocketsHttpHandler> factory;
    private SocketsHttpHandler handler;
    private int connects;

    /// <summary>Creates lane <paramref name="index"/>; <paramref name="factory"/> makes its handler (again at each rotation).</summary>
    public GongLane(int index, Func<GongLane, SocketsHttpHandler> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        Index = index;
        this.factory = factory;
        handler = factory(this);
    }

    /// <summary>0-based lane number (log and test output).</summary>
    public int Index { get; }

    /// <summary>New TCP connections this lane has opened so far (a warm-up that raised it met a cold connection).</summary>
    public int Connects => Volatile.Read(ref connects);

    /// <summary>When the lane's current connection was opened (UTC), or null before the first.</summary>
    public DateTimeOffset? ConnectedAt { get; private set; }

    /// <summary>Sends on this lane's connection.</summary>
    public Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        SocketsHttpHandler current;
        lock (sync)
        {
            current = handler;
        }

        return new HttpMessageInvoker(current, disposeHandler: false).SendAsync(request, cancellationToken);
    }

    /// <summary>Replaces the connection when it is older than <paramref name="lifetime"/> (called only by a warm-up,
    /// while the lane's send has nothing in flight).</summary>
    public void RotateIfOlderThan(TimeSpan lifetime, DateTimeOffset now)
    {
        SocketsHttpHandler? old = null;
        lock (sync)
        {
            if (ConnectedAt is { } at && now - at > lifetime)
            {
                old = handler;
                handler = factory(this);
                ConnectedAt = null;
            }
        }

        old?.Dispose();
    }

    /// <summary>Records a new connection.</summary>
    public void Connected(DateTimeOffset at)
    {
        Interlocked.Increment(ref connects);
        lock (sync)
        {
            ConnectedAt = at;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (sync)
        {
            handler.Dispose();
        }
    }
}

/// <summary>The primary handler of the Gong HttpClient: hands every request to its lane in <see cref="GongConnectionLanes"/>.</summary>
internal sealed class GongLaneRoutingHandler(GongConnectionLanes lanes) : HttpMessageHandler
{
    /// <inheritdoc />
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        lanes.SendAsync(request, cancellationToken);
}
