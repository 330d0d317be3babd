using Microsoft.Extensions.Options;

namespace Worker.Host.Gong;

/// <summary>
/// What this replica knows about the timing between its sends and their arrival at Gong, learned from the warm-up
/// request each call is preceded by (<see cref="GongApiClient.WarmUpAsync"/>), as measured by the connection lane from
/// the hand-off to the connection until the response headers (<see cref="GongConnectionLanes"/>: the HTTP pipeline's
/// own time is not network jitter). The window margin a call is recorded
/// with in the shared gate is <c>RateWindowMargin</c> plus the jitter allowance: until 12 warm round trips are
/// measured, <c>InitialJitterAllowance</c> (a lane sends a burst of uncounted warm-ups to measure 24 before the first
/// call); then the spread of the last 256 warm round trips (slowest minus fastest; while fewer than 256 are kept, scaled
/// by (n + 1) / (n − 1)), at most <c>MaxJitterAllowance</c>. 256 (about 85 s of one replica's calls at 3 calls/s),
/// not 64: the spread must cover the rare late arrival, and with 64 it often did not (drains of three replicas on 2
/// cores: 4 self-caused 429s in 7 runs, each after a call that arrived 16–24 ms after its start while its margin was
/// smaller; none in the runs with 256). Once the process is grown (8 calls sent, or 5 s after its
/// first call was sent) and 12 round trips were measured since, the round trips of its youth (the learning burst's
/// included) no longer set the slowest: they were taken while this process (and, with several replicas started
/// together, the others) was still starting, a state that is over; the fastest of the whole window stays the floor.
/// A round trip that opened a new connection is kept apart: it teaches the
/// cold allowance given to a call whose warm-up failed (its call may have to open the connection itself). Thread-safe.
/// </summary>
/// <remarks>
/// Why a round trip's spread bounds the arrival spread: a request's one-way delay varies by at most what its round
/// trip varies (the way back only adds); Gong counts arrivals, so two calls whose starts are spaced by more than one
/// second plus that spread arrive more than one second apart.
/// </remarks>
internal sealed class RateGatePacing(IOptions<GongOptions> options, TimeProvider time)
{
    private const int SampleWindow = 256;
    private const int MinimumSamples = 12;
    private const int YoungCalls = 8;

    /// <summary>How long after its first call a process counts as young, however few calls it made: what makes a young
    /// process's calls late (code compiled at first use, the start-up work of this and the other replicas) is over by
    /// then. A replica among three sends its 8th call about 8 s after its first at 3 calls/s.</summary>
    private static readonly TimeSpan YoungPeriod = TimeSpan.FromSeconds(5);
    /// <summary>What a young process's late start leaves of its young allowance for stalls after the start (drains of
    /// three replicas on 2 cores: no call arrived more than 14 ms after its start beyond the network's jitter).</summary>
    private static readonly TimeSpan YoungStallReserve = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan MinimumColdAllowance = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan MaximumColdAllowance = TimeSpan.FromSeconds(2);

    private readonly Lock sync = new();
    private readonly Queue<(double Ms, bool Young)> warmRoundTrips = new();
    private long? firstCallTimestamp;
    private double coldExtraMs;
    private TimeSpan jitter = options.Value.InitialJitterAllowance;
    private bool learned;
    private int callSamples;

    /// <summary>The margin a call on a warm connection is recorded with (base margin plus jitter allowance). While the
    /// process is young, the allowance is at least <c>InitialJitterAllowance</c> × (1 − max(calls / 8, s since the
    /// first call / 5 s)) (calls sent, <see cref="RecordCallSent"/>): a burst's round trips are taken within
    /// a few ms, so they may miss the stalls of a process that is still compiling. (Measured in drains of three replicas
    /// started together on 2 cores, arrivals counted at the simulator's door: no call arrived more than 14 ms after its
    /// start beyond the network's jitter; the latest were often a process's first calls.)</summary>
    public TimeSpan Margin => ForCall(warm: true).Margin;

    /// <summary>Warm round trips measured so far (at most 256 are kept).</summary>
    public int WarmSamples
    {
        get
        {
            lock (sync)
            {
                return warmRoundTrips.Count;
            }
        }
    }

    /// <summary>Whether enough warm round trips were measured to replace the initial allowance.</summary>
    public bool Learned
    {
        get
        {
            lock (sync)
            {
                return learned;
            }
        }
    }

    /// <summary>Where the jitter allowance comes from: <c>initial</c> (too few warm round trips yet) or <c>learned</c>.</summary>
    public string MarginSource
    {
        get
        {
            lock (sync)
            {
                return learned ? "learned" : "initial";
            }
        }
    }

    /// <summary>Records one warm-up request.</summary>
    /// <param name="roundTrip">Its wall time.</param>
    /// <param name="newConnection">Whether a new connection was opened for it (handshake included in the time).</param>
    /// <param name="answered">Whether any HTTP answer came back.</param>
    /// <param name="burst">Whether it was one of a learning burst's extra requests (not followed by a call).</param>
    public void RecordWarmUp(TimeSpan roundTrip, bool newConnection, bool answered, bool burst = false)
    {
        if (!answered)
        {
            return;
        }

        lock (sync)
        {
            if (newConnection)
            {
                var fastest = warmRoundTrips.Count > 0 ? warmRoundTrips.Min(r => r.Ms) : 0;
                coldExtraMs = Math.Max(coldExtraMs, roundTrip.TotalMilliseconds - fastest);
                return;
            }

            warmRoundTrips.Enqueue((roundTrip.TotalMilliseconds, GrownShare() < 1));
            while (warmRoundTrips.Count > SampleWindow)
            {
                warmRoundTrips.Dequeue();
            }

            if (warmRoundTrips.Count < MinimumSamples)
            {
                return;
            }

            // A grown process with enough round trips of its own grown life drops the slow ones of its youth; the fastest
            // of the whole window stays the floor of the spread (a burst's back-to-back round trips are often the fastest).
            var grown = warmRoundTrips.Where(r => !r.Young).Select(r => r.Ms).ToArray();
            var kept = grown.Length >= MinimumSamples ? grown : [.. warmRoundTrips.Select(r => r.Ms)];
            var slowest = kept.Max();
            var fastestOfWindow = warmRoundTrips.Min(r => r.Ms);
            // Until the window is full, the spread of n samples falls short of the true range (for evenly spread delays
            // by a factor (n - 1) / (n + 1)): scaled back up, so the first calls after a start are not paced too tight.
            var scale = kept.Length < SampleWindow ? (kept.Length + 1.0) / (kept.Length - 1.0) : 1.0;
            var spread = TimeSpan.FromMilliseconds((slowest - fastestOfWindow) * scale);
            jitter = spread > options.Value.MaxJitterAllowance ? options.Value.MaxJitterAllowance : spread;
            learned = true;
        }
    }

    /// <summary>Records a call that went on the wire (not one refused at the lane as late, nor one that never
    /// connected): the young process's count and clock run on calls sent, not on warm-ups, which every lane makes
    /// before it waits for its slot.</summary>
    public void RecordCallSent()
    {
        lock (sync)
        {
            callSamples++;
            firstCallTimestamp ??= time.GetTimestamp();
        }
    }

    /// <summary>How far the process is from young (0) to grown (1): the larger of calls sent / 8 and the time since
    /// its first call was sent / 5 s. Call under <see cref="sync"/>.</summary>
    private double GrownShare()
    {
        var byCalls = callSamples / (double)YoungCalls;
        var byTime = firstCallTimestamp is { } first ? time.GetElapsedTime(first) / YoungPeriod : 0;
        return Math.Min(1, Math.Max(byCalls, byTime));
    }

    /// <summary>The margin for the next call: <see cref="Margin"/>, plus the cold allowance (the largest extra time a
    /// new connection cost, at least 300 ms, at most 2 s) when its warm-up got no answer.</summary>
    public TimeSpan MarginForCall(bool warm) => ForCall(warm).Margin;

    /// <summary>
    /// The margin for the next call (<see cref="MarginForCall"/>) and, read at the same instant, how late it may start
    /// after its slot: half the base margin, plus what a young process's allowance holds beyond the measured jitter
    /// and a 20 ms reserve (<c>max(0, young floor − jitter allowance − 20 ms)</c>). A call recorded as arriving up to
    /// the margin after its slot keeps the window when it starts that late: the network needs the jitter allowance,
    /// the reserve covers a young process's stalls after the start (measured: at most 14 ms beyond the network's
    /// jitter). So while a process is young (its first 8 calls or 5 s), a caller woken tens of ms late by the start-up
    /// of this and the other replicas still uses its slot instead of giving it up; a grown process may start half the
    /// base margin late, as before.
    /// </summary>
    /// <param name="warm">Whether the call's warm-up was answered (else the cold allowance is added to the margin, not
    /// to the late start: it is for the handshake the call may have to make).</param>
    public GateMargin ForCall(bool warm)
    {
        lock (sync)
        {
            var o = options.Value;
            var youth = 1 - GrownShare();
            var young = youth <= 0 ? TimeSpan.Zero : o.InitialJitterAllowance * youth;
            var margin = o.RateWindowMargin + (jitter > young ? jitter : young);
            var spare = young - jitter - YoungStallReserve;
            var lateStart = (o.RateWindowMargin / 2) + (spare > TimeSpan.Zero ? spare : TimeSpan.Zero);
            if (!warm)
            {
                var cold = TimeSpan.FromMilliseconds(coldExtraMs * 1.5);
                margin += cold < MinimumColdAllowance ? MinimumColdAllowance : cold > MaximumColdAllowance ? MaximumColdAllowance : cold;
            }

            return new GateMargin(margin, lateStart);
        }
    }
}
