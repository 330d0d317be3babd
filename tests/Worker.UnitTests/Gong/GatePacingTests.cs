using Microsoft.Extensions.Time.Testing;
using Microsoft.Extensions.Options;
using Worker.Host.Gong;

namespace Worker.UnitTests.Gong;

public sealed class GatePacingTests
{
    [Theory]
    [InlineData("You can assign up to 100 prospects in a single request", 100)]
    [InlineData("crmProspectsIds: at most 100 prospects can be assigned in one request, got 200", 100)]
    [InlineData("Maximum of 50 prospects per request", 50)]
    [InlineData("The limit is 120 prospects per call", 120)]
    [InlineData("no more than 75 CRM prospects allowed", 75)]
    [InlineData("Send 100 prospects at most", 100)]
    public void A_400_message_that_states_a_limit_gives_the_number(string message, int limit) =>
        Assert.Equal(limit, GongBatchLimit.ParseLimit(message));

    [Theory]
    [InlineData("Malformed crmProspectsIds value: 0035g00000XYZ")]
    [InlineData("flowId is required")]
    [InlineData("200 with an unreadable body")]
    [InlineData(null)]
    public void A_400_message_without_a_limit_gives_none(string? message) => Assert.Null(GongBatchLimit.ParseLimit(message));

    [Fact]
    public void The_margin_starts_with_the_initial_allowance_then_follows_the_measured_jitter()
    {
        var pacing = new RateGatePacing(Options.Create(new GongOptions()), new FakeTimeProvider());
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;
        Assert.Equal(TimeSpan.FromMilliseconds(b + 100), pacing.Margin);
        Assert.Equal("initial", pacing.MarginSource);

        // The process's youth (8 calls), then round trips of 10–90 ms (jitter up to 80 ms); a cold one (handshake) is
        // kept apart.
        pacing.RecordWarmUp(TimeSpan.FromMilliseconds(400), newConnection: true, answered: true);
        for (var i = 0; i < 8; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10), newConnection: false, answered: true);
            pacing.RecordCallSent();
        }

        for (var i = 0; i < 256; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i * 80 / 255.0)), newConnection: false, answered: true);
        }

        Assert.Equal("learned", pacing.MarginSource);
        Assert.InRange(pacing.Margin.TotalMilliseconds, b + 74, b + 80);
        Assert.InRange((pacing.MarginForCall(warm: false) - pacing.Margin).TotalMilliseconds, 300, 2000);

        // Quiet network: the allowance shrinks to the measured spread, so the gate gets close to R / (1 + J).
        for (var i = 0; i < 256; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i % 3)), newConnection: false, answered: true);
        }

        Assert.InRange(pacing.Margin.TotalMilliseconds, b, b + 3);
    }

    [Fact]
    public void A_young_process_keeps_a_floor_that_falls_from_the_initial_allowance_to_the_learned_one_over_8_calls()
    {
        var pacing = new RateGatePacing(Options.Create(new GongOptions()), new FakeTimeProvider());
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;

        // A learning burst on a quiet network: 24 round trips of 10–12 ms, none followed by a call.
        for (var i = 0; i < 24; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i % 3)), newConnection: false, answered: true, burst: true);
        }

        Assert.Equal("learned", pacing.MarginSource);
        Assert.Equal(b + 100, pacing.Margin.TotalMilliseconds, 3);
        var margins = new List<double>();
        for (var call = 1; call <= 8; call++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(11), newConnection: false, answered: true);
            pacing.RecordCallSent();
            margins.Add(pacing.Margin.TotalMilliseconds);
        }

        Assert.Equal(b + 100 - 12.5, margins[0], 3);
        Assert.Equal(b + 50, margins[3], 3);
        Assert.True(margins.Zip(margins.Skip(1)).All(m => m.Second <= m.First), string.Join(", ", margins));
        Assert.InRange(margins[^1], b, b + 3);
    }

    [Fact]
    public void A_young_process_may_start_late_by_what_its_allowance_holds_beyond_the_jitter_and_a_reserve()
    {
        var pacing = new RateGatePacing(Options.Create(new GongOptions()), new FakeTimeProvider());
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;

        // Before anything is measured, the initial allowance is the jitter allowance: nothing spare.
        Assert.Equal(b / 2, pacing.ForCall(warm: true).LateStart.TotalMilliseconds, 3);

        // A learning burst of 10–20 ms round trips: a spread of 10 ms, scaled by 25 / 23 while fewer than 256.
        for (var i = 0; i < 24; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i * 10 / 23.0)), newConnection: false, answered: true, burst: true);
        }

        var jitter = 10 * 25 / 23.0;
        var first = pacing.ForCall(warm: true);
        Assert.Equal(b + 100, first.Margin.TotalMilliseconds, 3);
        Assert.Equal((b / 2) + 100 - jitter - 20, first.LateStart.TotalMilliseconds, 3);

        // A cold call's allowance is for its handshake: added to the margin, not to the late start.
        var cold = pacing.ForCall(warm: false);
        Assert.True(cold.Margin >= first.Margin + TimeSpan.FromMilliseconds(300), cold.ToString());
        Assert.Equal(first.LateStart, cold.LateStart);

        // The spare part falls with the young floor: after 4 of 8 calls the floor is 50 ms.
        for (var call = 0; call < 4; call++)
        {
            pacing.RecordCallSent();
        }

        Assert.Equal((b / 2) + 50 - jitter - 20, pacing.ForCall(warm: true).LateStart.TotalMilliseconds, 3);

        // Grown: half the base margin, as for every call of a grown process; never more than the margin.
        for (var call = 0; call < 4; call++)
        {
            pacing.RecordCallSent();
        }

        var grown = pacing.ForCall(warm: true);
        Assert.Equal(b / 2, grown.LateStart.TotalMilliseconds, 3);
        Assert.True(grown.LateStart <= grown.Margin, grown.ToString());
    }

    [Fact]
    public void A_young_process_is_grown_5_s_after_its_first_call_however_few_calls_it_made()
    {
        var clock = new FakeTimeProvider();
        var pacing = new RateGatePacing(Options.Create(new GongOptions()), clock);
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;
        for (var i = 0; i < 24; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i % 3)), newConnection: false, answered: true, burst: true);
        }

        // One call (1/8 of the calls), then 2.5 s: half the young period, so the floor is half the initial allowance.
        pacing.RecordWarmUp(TimeSpan.FromMilliseconds(11), newConnection: false, answered: true);
        pacing.RecordCallSent();
        Assert.Equal(b + 100 - 12.5, pacing.Margin.TotalMilliseconds, 3);
        clock.Advance(TimeSpan.FromSeconds(2.5));
        Assert.Equal(b + 50, pacing.Margin.TotalMilliseconds, 3);
        clock.Advance(TimeSpan.FromSeconds(2.5));
        Assert.InRange(pacing.Margin.TotalMilliseconds, b, b + 3);
    }

    [Fact]
    public void A_grown_process_forgets_the_round_trips_of_its_youth_once_12_are_measured_since()
    {
        var clock = new FakeTimeProvider();
        var pacing = new RateGatePacing(Options.Create(new GongOptions()), clock);
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;

        // The burst ran while the process (and the other replicas) were starting: round trips of 10–60 ms.
        for (var i = 0; i < 24; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i * 50 / 23.0)), newConnection: false, answered: true, burst: true);
        }

        // The first call, then 5 s: grown. Calls on a quiet network: 10–12 ms. While fewer than 12 are measured since,
        // the youth's round trips still count.
        pacing.RecordWarmUp(TimeSpan.FromMilliseconds(11), newConnection: false, answered: true);
        pacing.RecordCallSent();
        clock.Advance(TimeSpan.FromSeconds(5));
        for (var i = 0; i < 11; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i % 3)), newConnection: false, answered: true);
            clock.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.InRange(pacing.Margin.TotalMilliseconds, b + 50, b + 60);
        pacing.RecordWarmUp(TimeSpan.FromMilliseconds(11), newConnection: false, answered: true);
        Assert.InRange(pacing.Margin.TotalMilliseconds, b + 2, b + 3);
    }

    [Fact]
    public void A_young_process_keeps_the_learning_burst_in_its_allowance()
    {
        var pacing = new RateGatePacing(Options.Create(new GongOptions()), new FakeTimeProvider());
        for (var i = 0; i < 24; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i * 150 / 23.0)), newConnection: false, answered: true, burst: true);
        }

        // 7 calls within the young period, on a quiet network: the burst's 150 ms spread still sets the allowance.
        for (var i = 0; i < 7; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10), newConnection: false, answered: true);
            pacing.RecordCallSent();
        }

        Assert.InRange(pacing.Margin.TotalMilliseconds, new GongOptions().RateWindowMargin.TotalMilliseconds + 150, 1000);
    }

    [Fact]
    public void Warm_ups_of_many_lanes_before_the_first_call_is_sent_leave_the_process_young()
    {
        var clock = new FakeTimeProvider();
        var pacing = new RateGatePacing(Options.Create(new GongOptions()), clock);
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;

        // Eight lanes (Dispatch:MaxConcurrentBatches) warm up, then wait seconds in the queue of slots: no call is sent.
        for (var i = 0; i < 32; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i % 3)), newConnection: false, answered: true, burst: i < 24);
        }

        clock.Advance(TimeSpan.FromSeconds(8));
        Assert.Equal(b + 100, pacing.Margin.TotalMilliseconds, 3);
    }

    [Fact]
    public void The_fastest_round_trip_of_the_youth_stays_the_floor_of_the_spread()
    {
        var clock = new FakeTimeProvider();
        var pacing = new RateGatePacing(Options.Create(new GongOptions()), clock);
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;

        // The burst, back to back on an idle connection: 2–4 ms. Then a grown process's calls: 10–12 ms.
        for (var i = 0; i < 24; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(2 + (i % 3)), newConnection: false, answered: true, burst: true);
        }

        pacing.RecordCallSent();
        clock.Advance(TimeSpan.FromSeconds(5));
        for (var i = 0; i < 12; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i % 3)), newConnection: false, answered: true);
            pacing.RecordCallSent();
        }

        // Slowest of the grown (12) minus fastest of the window (2): 10 ms, scaled by 13 / 11.
        Assert.Equal(b + (10 * 13 / 11.0), pacing.Margin.TotalMilliseconds, 3);
    }

    [Fact]
    public void A_warm_up_without_an_answer_teaches_nothing()
    {
        var pacing = new RateGatePacing(Options.Create(new GongOptions()), new FakeTimeProvider());
        for (var i = 0; i < 20; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromSeconds(10), newConnection: false, answered: false);
        }

        Assert.Equal("initial", pacing.MarginSource);
    }
}
