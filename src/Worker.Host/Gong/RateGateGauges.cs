using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Worker.Host.Operations;

namespace Worker.Host.Gong;

/// <summary>
/// What this replica last saw of the shared rate gate, as metrics: <c>flow_assignment.rate_gate.allowed_rate</c> (by
/// <c>reason</c>), <c>.margin</c>, and the counters <c>.slots_given_up</c> and <c>.slots_reclaimed</c>. Written by
/// <see cref="PostgresRateGate"/>; thread-safe.
/// </summary>
internal sealed class RateGateGauges
{
    private readonly Lock sync = new();
    private double allowedRate;
    private string rateReason = PostgresRateGate.RateConfigured;
    private double marginSeconds;
    private long slotsGivenUp;
    private long slotsReclaimed;
    private long lateDepartures;
    private long lateDeparturesUnmoved;

    /// <summary>Creates the instruments on the worker's meter, starting from the configured rate and base margin.</summary>
    public RateGateGauges(IOptions<GongOptions> options, IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(meterFactory);
        allowedRate = options.Value.RequestsPerSecond;
        marginSeconds = options.Value.RateWindowMargin.TotalSeconds;
        var meter = meterFactory.Create(WorkerMetrics.MeterName);
        meter.CreateObservableGauge("flow_assignment.rate_gate.allowed_rate", ObserveRate, "{call}/s",
            "Calls per second the shared gate allows now (RequestsPerSecond unless a 429 cut it), by reason (configured, throttled, climbing); as this replica last saw it.");
        meter.CreateObservableCounter("flow_assignment.rate_gate.slots_given_up", () => Interlocked.Read(ref slotsGivenUp), "{slot}",
            "Slots this replica gave up: it was more than half of RateWindowMargin late for them and could not move them (a busy machine); each costs one slot of throughput, never a 429.");
        meter.CreateObservableCounter("flow_assignment.rate_gate.slots_reclaimed", () => Interlocked.Read(ref slotsReclaimed), "{slot}",
            "Slots this replica moved shortly ahead when it was late for them, because no later slot depended on them yet; each costs the lateness instead of a slot.");
        meter.CreateObservableCounter("flow_assignment.rate_gate.late_departures", () => Interlocked.Read(ref lateDepartures), "{call}",
            "Calls of this replica whose request reached its connection more than half of RateWindowMargin after their slot (a stall between the gate's check and the socket); each moved its recorded arrival later (late_departures_unmoved: too late to move).");
        meter.CreateObservableCounter("flow_assignment.rate_gate.late_departures_unmoved", () => Interlocked.Read(ref lateDeparturesUnmoved), "{call}",
            "Late departures (see late_departures) whose recorded arrival could no longer move: the slot a second later was already taken, so that call may draw a 429.");
        meter.CreateObservableGauge("flow_assignment.rate_gate.margin", () => Volatile.Read(ref marginSeconds), "s",
            "Window margin this replica's latest call was recorded with: RateWindowMargin plus the learned network jitter.");
    }

    /// <summary>The allowed rate (calls/s) and its reason code as this replica last saw them.</summary>
    public (double Rate, string Reason) AllowedRate
    {
        get
        {
            lock (sync)
            {
                return (allowedRate, rateReason);
            }
        }
    }

    /// <summary>Slots given up so far (count).</summary>
    public long SlotsGivenUp => Interlocked.Read(ref slotsGivenUp);

    /// <summary>Slots moved so far (count).</summary>
    public long SlotsReclaimed => Interlocked.Read(ref slotsReclaimed);

    /// <summary>Keeps what a take saw of the allowed rate, and the margin of a slot taken.</summary>
    public void ObserveTake(RateGateTake take, TimeSpan margin)
    {
        ArgumentNullException.ThrowIfNull(take);
        ObserveRate(take.Rate, take.RateReason);
        if (take.Taken)
        {
            Volatile.Write(ref marginSeconds, margin.TotalSeconds);
        }
    }

    /// <summary>Keeps the allowed rate (calls/s) and its reason code.</summary>
    public void ObserveRate(double rate, string reason)
    {
        lock (sync)
        {
            allowedRate = rate;
            rateReason = reason;
        }
    }

    /// <summary>Counts a slot given up.</summary>
    public void GaveUp() => Interlocked.Increment(ref slotsGivenUp);

    /// <summary>Late departures so far whose recorded arrival moved (count).</summary>
    public long LateDepartures => Interlocked.Read(ref lateDepartures);

    /// <summary>Late departures so far whose recorded arrival could not move (count).</summary>
    public long LateDeparturesUnmoved => Interlocked.Read(ref lateDeparturesUnmoved);

    /// <summary>Counts a late departure, <paramref name="moved"/> or not.</summary>
    public void DepartedLate(bool moved) => Interlocked.Increment(ref moved ? ref lateDepartures : ref lateDeparturesUnmoved);

    /// <summary>Counts a slot moved.</summary>
    public void Reclaimed() => Interlocked.Increment(ref slotsReclaimed);

    private IEnumerable<Measurement<double>> ObserveRate()
    {
        var (rate, reason) = AllowedRate;
        yield return new Measurement<double>(rate, new KeyValuePair<string, object?>("reason", reason));
    }
}
