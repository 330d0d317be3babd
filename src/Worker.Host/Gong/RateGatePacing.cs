using Microsoft.Extensions.Options;

namespace Worker.Host.Gong;

/// <summary>
/// What this replica knows about the timing between its sends and their arrival at Gong, learned from the warm-up
/// request each call is preceded by (<see cref="GongApiClient.WarmUpAsync"/>), as measured by the connection lane from
/// the hand-off to the connection until the response headers (<see cref="GongConnectionLanes"/>: the HTTP pipeline's
/// own time is not network jitter). The window margin a call is recorded
/// with in the shared gate is <c>RateWindowMargin</c> plus the jitter allowance: until 12 warm round trips are
/// measured, <c>InitialJitterAllowance</c> (a lane sends a burst of uncounted warm-ups to measure 24 before the first
/// call); then the spread of the last 64 warm round trips (slowest minus the
/// fastest; while fewer than 64 are kept, scaled by (n + 1) / (n - 1)), at most <c>MaxJitterAllowance</c>. A round trip that opened a new connection is kept apart: it teaches the
/// cold allowance given to a call whose warm-up failed (its call may have to open the connection itself). Thread-safe.
/// </summary>
/// <remarks>
/// Why a round trip's spread bounds the arrival spread: a request's one-way delay varies by at most what its round
/// trip varies (the way back only adds); Gong counts arrivals, so two calls whose starts are spaced by more than one
/// second plus that spread arrive more than one second apart.
/// </remarks>
internal sealed class RateGatePacing(IOptions<GongOptions> options)
{
    private const int SampleWindow = 64;
    private const int MinimumSamples = 12;
    private const int YoungCalls = 16;
    // The slowest of the window, not a percentile: one call in twenty beyond the allowance is a self-caused 429 in a busy window.
    private const double Percentile = 1.0;
    private static readonly TimeSpan MinimumColdAllowance = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan MaximumColdAllowance = TimeSpan.FromSeconds(2);

    private readonly Lock sync = new();
    private readonly Queue<double> warmRoundTripsMs = new();
    private double coldExtraMs;
    private TimeSpan jitter = options.Value.InitialJitterAllowance;
    private bool learned;
    private int callSamples;

    /// <summary>The margin a call on a warm connection is recorded with (base margin plus jitter allowance). While the
    /// process is young (fewer than 16 warm-ups before calls measured, a burst's not counted), the allowance is at least
    /// <c>InitialJitterAllowance</c> × (1 − calls / 16): a burst's round trips are taken within a few ms, so they miss
    /// the stalls of a process that is still compiling (a drain on a busy machine drew self-caused 429s at its 5th and 8th
    /// calls, arriving 37 and 54 ms later than their slots, with the burst's allowance alone).</summary>
    public TimeSpan Margin
    {
        get
        {
            lock (sync)
            {
                var young = callSamples >= YoungCalls ? TimeSpan.Zero : options.Value.InitialJitterAllowance * (1 - (callSamples / (double)YoungCalls));
                return options.Value.RateWindowMargin + (jitter > young ? jitter : young);
            }
        }
    }

    /// <summary>Warm round trips measured so far (at most 64 are kept).</summary>
    public int WarmSamples
    {
        get
        {
            lock (sync)
            {
                return warmRoundTripsMs.Count;
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
            if (!burst && !newConnection)
            {
                callSamples++;
            }

            if (newConnection)
            {
                var fastest = warmRoundTripsMs.Count > 0 ? warmRoundTripsMs.Min() : 0;
                coldExtraMs = Math.Max(coldExtraMs, roundTrip.TotalMilliseconds - fastest);
                return;
            }

            warmRoundTripsMs.Enqueue(roundTrip.TotalMilliseconds);
            while (warmRoundTripsMs.Count > SampleWindow)
            {
                warmRoundTripsMs.Dequeue();
            }

            if (warmRoundTripsMs.Count < MinimumSamples)
            {
                return;
            }

            var sorted = warmRoundTripsMs.Order().ToArray();
            var high = sorted[(int)Math.Ceiling(Percentile * sorted.Length) - 1];
            // Until the window is full, the spread of n samples falls short of the true range (for evenly spread delays
            // by a factor (n - 1) / (n + 1)): scaled back up, so the first calls after a start are not paced too tight.
            var scale = sorted.Length < SampleWindow ? (sorted.Length + 1.0) / (sorted.Length - 1.0) : 1.0;
            var spread = TimeSpan.FromMilliseconds((high - sorted[0]) * scale);
            jitter = spread > options.Value.MaxJitterAllowance ? options.Value.MaxJitterAllowance : spread;
            learned = true;
        }
    }

    /// <summary>The margin for the next call: <see cref="Margin"/>, plus the cold allowance (the largest extra time a
    /// new connection cost, at least 300 ms, at most 2 s) when its warm-up got no answer.</summary>
    public TimeSpan MarginForCall(bool warm)
    {
        var margin = Margin;
        if (warm)
        {
            return margin;
        }

        lock (sync)
        {
            var cold = TimeSpan.FromMilliseconds(coldExtraMs * 1.5);
            return margin + (cold < MinimumColdAllowance ? MinimumColdAllowance : cold > MaximumColdAllowance ? MaximumColdAllowance : cold);
        }
    }
}
