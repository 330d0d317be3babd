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
        var pacing = new RateGatePacing(Options.Create(new GongOptions()));
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;
        Assert.Equal(TimeSpan.FromMilliseconds(b + 100), pacing.Margin);
        Assert.Equal("initial", pacing.MarginSource);

        // Round trips of 10–90 ms (jitter up to 80 ms); a cold one (handshake) is kept apart.
        pacing.RecordWarmUp(TimeSpan.FromMilliseconds(400), newConnection: true, answered: true);
        for (var i = 0; i < 64; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i * 80 / 63.0)), newConnection: false, answered: true);
        }

        Assert.Equal("learned", pacing.MarginSource);
        Assert.InRange(pacing.Margin.TotalMilliseconds, b + 74, b + 80);
        Assert.InRange((pacing.MarginForCall(warm: false) - pacing.Margin).TotalMilliseconds, 300, 2000);

        // Quiet network: the allowance shrinks to the measured spread, so the gate gets close to R / (1 + J).
        for (var i = 0; i < 64; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i % 3)), newConnection: false, answered: true);
        }

        Assert.InRange(pacing.Margin.TotalMilliseconds, b, b + 3);
    }

    [Fact]
    public void A_young_process_keeps_a_floor_that_falls_from_the_initial_allowance_to_the_learned_one_over_16_calls()
    {
        var pacing = new RateGatePacing(Options.Create(new GongOptions()));
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;

        // A learning burst on a quiet network: 24 round trips of 10–12 ms, none followed by a call.
        for (var i = 0; i < 24; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i % 3)), newConnection: false, answered: true, burst: true);
        }

        Assert.Equal("learned", pacing.MarginSource);
        Assert.Equal(b + 100, pacing.Margin.TotalMilliseconds, 3);
        var margins = new List<double>();
        for (var call = 1; call <= 16; call++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(11), newConnection: false, answered: true);
            margins.Add(pacing.Margin.TotalMilliseconds);
        }

        Assert.Equal(b + 100 - 6.25, margins[0], 3);
        Assert.Equal(b + 50, margins[7], 3);
        Assert.True(margins.Zip(margins.Skip(1)).All(m => m.Second <= m.First), string.Join(", ", margins));
        Assert.InRange(margins[^1], b, b + 3);
    }

    [Fact]
    public void A_warm_up_without_an_answer_teaches_nothing()
    {
        var pacing = new RateGatePacing(Options.Create(new GongOptions()));
        for (var i = 0; i < 20; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromSeconds(10), newConnection: false, answered: false);
        }

        Assert.Equal("initial", pacing.MarginSource);
    }
}
