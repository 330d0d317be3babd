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
/// <remarks>
/// The lane is the last step before the wire, so the two timing facts the rate gate depends on are taken here:
/// <list type="bullet">
/// <item>a call's latest start (<see cref="SendNoLaterThanKey"/>, its rate-gate slot plus <see cref="GateMargin.LateStart"/>) is
/// checked just before the request is handed to the connection, after the whole HTTP pipeline ran: a caller delayed
/// anywhere on the way (a GC pause, a descheduled thread) sends nothing (<see cref="GongLateForSlotException"/>), nor
/// does a call while a 429 answered on any lane of this process is held here (its Retry-After, at most 1 s): the
/// caller read the shared block before that 429 was stored;</item>
/// <item>a warm-up's round trip is measured from the hand-off to the response headers, without the pipeline's own
/// time, and taught to <see cref="RateGatePacing"/>. Until the pacing has measured <see cref="LearningSamples"/> warm
/// round trips, a warm-up first sends up to <see cref="LearningBurst"/> more uncounted <c>HEAD</c>s on its connection,
/// so the first calls are paced with a measured allowance, not the initial one.</item>
/// </list>
/// </remarks>
internal sealed class GongConnectionLanes(IOptions<GongOptions> options, TimeProvider time, RateGatePacing pacing) : IDisposable
{
    /// <summary>Most extra warm-up requests one warm-up sends while fewer than <see cref="LearningSamples"/> are measured.</summary>
    public const int LearningBurst = 32;

    /// <summary>Warm round trips the learning burst measures before the first call.</summary>
    public const int LearningSamples = 24;

    /// <summary>Request option naming the lane a request must use.</summary>
    public static readonly HttpRequestOptionsKey<GongLane> LaneKey = new("Worker.Gong.Lane");

    /// <summary>Request option marking a warm-up request (no credentials, not retried, not counted by the breaker).</summary>
    public static readonly HttpRequestOptionsKey<bool> WarmUpKey = new("Worker.Gong.WarmUp");

    /// <summary>Request option: the latest instant (this process's <see cref="TimeProvider"/>, UTC) the request may be
    /// handed to its connection; later, nothing is sent and the send fails with <see cref="GongLateForSlotException"/>.</summary>
    public static readonly HttpRequestOptionsKey<DateTimeOffset> SendNoLaterThanKey = new("Worker.Gong.SendNoLaterThan");

    /// <summary>Request option: the failure of the request's previous attempt on its lane (a retry past the latest
    /// start fails with it, unsent).</summary>
    private static readonly HttpRequestOptionsKey<Exception> FailedAttemptKey = new("Worker.Gong.FailedAttempt");

    /// <summary>Longest a 429 holds this process's calls at the lane (the shared block in Postgres holds them after).</summary>
    private static readonly TimeSpan LocalHold = TimeSpan.FromSeconds(1);

    private readonly Lock sync = new();
    private readonly Stack<GongLane> free = new();
    private long heldUntilTicks;
    private readonly List<GongLane> all = [];
    private readonly Lazy<SocketsHttpHandler> unlaned = new(() => CreateHandler(null, time));

    /// <summary>Takes a free lane (or opens a new one); dispose the lease to give it back.</summary>
    public LaneLease Acquire()
    {
        lock (sync)
        {
            if (!free.TryPop(out var lane))
            {
                lane = new GongLane(all.Count, l => CreateHandler(l, time), time);
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
            return WarmUpAsync(lane, request, cancellationToken);
        }

        if (!request.Options.TryGetValue(SendNoLaterThanKey, out var deadline))
        {
            return lane.SendAsync(request, cancellationToken);
        }

        if (time.GetUtcNow() is var now && now < new DateTimeOffset(Interlocked.Read(ref heldUntilTicks), TimeSpan.Zero))
        {
            // A 429 answered on another lane of this process since this call's slot was checked: its block may not
            // be stored yet, so this call would arrive inside Gong's refusal. Nothing is sent; the caller's slot is
            // moved or given up like a late one, and the shared block then holds it.
            return Task.FromException<HttpResponseMessage>(new GongLateForSlotException(
                "a 429 was answered in this process after this call's slot was checked; nothing was sent"));
        }

        if (now > deadline)
        {
            // A retry of an attempt whose connection failed (the pipeline resends the same request) that comes after the
            // latest start is not sent either: it fails as that attempt did, so the call ends as that failure (nothing
            // reached Gong) instead of arriving late.
            return Task.FromException<HttpResponseMessage>(request.Options.TryGetValue(FailedAttemptKey, out var failed)
                ? failed
                : new GongLateForSlotException(now - deadline));
        }

        return SendRememberingFailureAsync(lane, request, cancellationToken);
    }

    private async Task<HttpResponseMessage> SendRememberingFailureAsync(GongLane lane, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        try
        {
            var response = await lane.SendAsync(request, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode == System.Net.HttpStatusCode.TooManyRequests)
            {
                Hold(response);
            }

            return response;
        }
        catch (HttpRequestException ex)
        {
            request.Options.Set(FailedAttemptKey, ex);
            throw;
        }
    }

    /// <summary>After a 429: no call of this process goes on the wire until its Retry-After, at most
    /// <see cref="LocalHold"/>, by which time the shared block is stored and every caller has read it.</summary>
    private void Hold(HttpResponseMessage response)
    {
        var now = time.GetUtcNow();
        var until = RetryAfter.Until(response.Headers, now) is { } retry && retry < now + LocalHold ? retry : now + LocalHold;
        long current;
        do
        {
            current = Interlocked.Read(ref heldUntilTicks);
        }
        while (until.UtcTicks > current && Interlocked.CompareExchange(ref heldUntilTicks, until.UtcTicks, current) != current);
    }

    /// <summary>Sends a warm-up on its lane, preceded by a learning burst while few round trips are known, and teaches
    /// each answered round trip (hand-off to response headers) to the pacing.</summary>
    private async Task<HttpResponseMessage> WarmUpAsync(GongLane lane, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        for (var i = 0; i < LearningBurst && pacing.WarmSamples < LearningSamples && request.RequestUri is { } uri; i++)
        {
            using var extra = new HttpRequestMessage(HttpMethod.Head, uri);
            using var response = await MeasuredSendAsync(lane, extra, burst: true, cancellationToken).ConfigureAwait(false);
        }

        return await MeasuredSendAsync(lane, request, burst: false, cancellationToken).ConfigureAwait(false);
    }

    private async Task<HttpResponseMessage> MeasuredSendAsync(GongLane lane, HttpRequestMessage request, bool burst, CancellationToken cancellationToken)
    {
        var connects = lane.Connects;
        var started = time.GetTimestamp();
        var response = await lane.SendAsync(request, cancellationToken).ConfigureAwait(false);
        pacing.RecordWarmUp(time.GetElapsedTime(started), lane.Connects != connects, answered: true, burst);
        return response;
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
                if (lane is null)
                {
                    return new NetworkStream(socket, ownsSocket: true);
                }

                lane.Connected(time.GetUtcNow());
                return new LaneDepartureStream(socket, lane);
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
