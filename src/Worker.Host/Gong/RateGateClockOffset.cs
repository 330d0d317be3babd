using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Worker.Host.Gong;

/// <summary>
/// The offset between the rate gate's clock and this process's <see cref="TimeProvider"/>, and how long a read of the
/// gate takes. With <c>Gong:RateGateClock=Database</c> (the default) slots are on Postgres' <c>clock_timestamp()</c>,
/// one clock for every replica; each round trip to the <c>rate_gate</c> row gives a sample (NTP-style: the midpoint of
/// the round trip is the best estimate of when the database read its clock), and the sample with the shortest round
/// trip of the last 256 sets the offset. So replicas whose clocks differ still space their calls, and a replica's own
/// estimate does not jump between two of its calls by more than the best round trips differ. With <c>Local</c> the
/// offset is zero and the TimeProvider is the gate's clock (tests on a fake clock). Thread-safe.
/// </summary>
internal sealed class RateGateClockOffset(IOptions<GongOptions> options, TimeProvider time)
{
    /// <summary>Clock samples kept (two per call: about a minute at 3 calls/s). A short window can let the offset jump
    /// by tens of ms on a busy machine whenever its best sample leaves it, and a call slotted before the jump and one
    /// after are that much closer at Gong's door (suspected cause of a self-caused 429 at a process's fifth call).</summary>
    private const int ClockWindow = 256;

    /// <summary>Clock reads made before a process's first slot, so its first calls are not converted with the offset
    /// of one slow round trip.</summary>
    private const int WarmUpReads = 8;

    /// <summary>Round trips of block reads kept for <see cref="BlockCheckLead"/>.</summary>
    private const int ReadWindow = 16;

    /// <summary>A slot is checked against a 429 block at least this long before it: short enough that a 429 answered
    /// just before the slot is still seen. The lead grows with the slowest of the last 16 reads (plus
    /// <see cref="BlockCheckSlack"/>, at most <see cref="MaximumBlockCheckLead"/>), so the read's round trip stays out of
    /// the instant the call starts: on a busy machine a read that ends after the slot made the caller late, and a late
    /// caller gives its slot up.</summary>
    private static readonly TimeSpan MinimumBlockCheckLead = TimeSpan.FromMilliseconds(8);

    private static readonly TimeSpan MaximumBlockCheckLead = TimeSpan.FromMilliseconds(40);

    private static readonly TimeSpan BlockCheckSlack = TimeSpan.FromMilliseconds(3);

    private readonly Lock sync = new();
    private readonly Queue<(TimeSpan RoundTrip, TimeSpan Offset)> samples = new();
    private readonly Queue<TimeSpan> readRoundTrips = new();
    private TimeSpan offset;

    /// <summary>Whether the gate's clock is the database's (else this process's TimeProvider).</summary>
    public bool UsesDatabaseClock => options.Value.RateGateClock != RateGateClock.Local;

    /// <summary>Whether fewer than 8 samples were taken yet (a process before its first slot reads the clock until
    /// there are 8).</summary>
    public bool NeedsWarmUp
    {
        get
        {
            lock (sync)
            {
                return UsesDatabaseClock && samples.Count < WarmUpReads;
            }
        }
    }

    /// <summary>How long before a slot the 429 block is read: the slowest of the last 16 reads plus slack, 8–40 ms.</summary>
    public TimeSpan BlockCheckLead
    {
        get
        {
            lock (sync)
            {
                var slowest = readRoundTrips.Count > 0 ? readRoundTrips.Max() : TimeSpan.Zero;
                var lead = slowest + BlockCheckSlack;
                return lead < MinimumBlockCheckLead ? MinimumBlockCheckLead : lead > MaximumBlockCheckLead ? MaximumBlockCheckLead : lead;
            }
        }
    }

    /// <summary>An instant on the gate's clock, on this process's clock.</summary>
    public DateTimeOffset ToLocal(DateTimeOffset gate)
    {
        lock (sync)
        {
            return gate - offset;
        }
    }

    /// <summary>An instant on this process's clock, on the gate's clock.</summary>
    public DateTimeOffset ToGate(DateTimeOffset local)
    {
        lock (sync)
        {
            return local + offset;
        }
    }

    /// <summary>The <c>@now</c> parameter of the gate's SQL: this process's clock with <c>Local</c>, else null (the
    /// SQL reads <c>clock_timestamp()</c>).</summary>
    public NpgsqlParameter NowParameter() => new("now", NpgsqlDbType.TimestampTz)
    {
        Value = UsesDatabaseClock ? DBNull.Value : time.GetUtcNow().ToUniversalTime(),
    };

    /// <summary>Keeps the gate-minus-local offset of one round trip (sent at <paramref name="sentAt"/>, this process's
    /// clock, lasting <paramref name="roundTrip"/>, in which the gate read <paramref name="gateNow"/>).</summary>
    public void Observe(DateTimeOffset sentAt, TimeSpan roundTrip, DateTimeOffset gateNow)
    {
        if (!UsesDatabaseClock)
        {
            return;
        }

        lock (sync)
        {
            samples.Enqueue((roundTrip, gateNow - (sentAt + (roundTrip / 2))));
            while (samples.Count > ClockWindow)
            {
                samples.Dequeue();
            }

            offset = samples.MinBy(s => s.RoundTrip).Offset;
        }
    }

    /// <summary>Keeps the round trip of a block read (for <see cref="BlockCheckLead"/>).</summary>
    public void ObserveRead(TimeSpan roundTrip)
    {
        lock (sync)
        {
            readRoundTrips.Enqueue(roundTrip);
            while (readRoundTrips.Count > ReadWindow)
            {
                readRoundTrips.Dequeue();
            }
        }
    }
}
