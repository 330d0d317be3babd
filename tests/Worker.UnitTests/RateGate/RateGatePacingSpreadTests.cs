using Microsoft.Extensions.Time.Testing;
using Microsoft.Extensions.Options;
using Worker.Host.Gong;

namespace Worker.UnitTests.RateGate;

/// <summary>The jitter allowance learned from few round trips (a process's first warm-ups) is scaled up to the range
/// those samples suggest, not taken at their raw spread; the slowest round trip alone is left out.</summary>
public sealed class RateGatePacingSpreadTests
{
    [Fact]
    public void Few_round_trips_give_fastest_to_second_slowest_scaled_by_n_plus_1_over_n_minus_2_and_a_full_window_its_raw_value()
    {
        // No initial allowance, so the young process's floor does not hide the learned spread.
        var pacing = new RateGatePacing(Options.Create(new GongOptions { InitialJitterAllowance = TimeSpan.Zero }), new FakeTimeProvider());
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;
        for (var i = 0; i < 11; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i * 2)), newConnection: false, answered: true, burst: true);
        }

        Assert.False(pacing.Learned);
        Assert.Equal(11, pacing.WarmSamples);

        // 12 samples of 10–30 ms and one stall of 90 ms: fastest to second slowest 20 ms, scaled by 13 / 10.
        pacing.RecordWarmUp(TimeSpan.FromMilliseconds(90), newConnection: false, answered: true, burst: true);
        Assert.True(pacing.Learned);
        Assert.Equal(b + (20 * 13 / 10.0), pacing.Margin.TotalMilliseconds, precision: 3);

        // A second stall counts.
        pacing.RecordWarmUp(TimeSpan.FromMilliseconds(80), newConnection: false, answered: true, burst: true);
        Assert.Equal(b + (70 * 14 / 11.0), pacing.Margin.TotalMilliseconds, precision: 3);

        // 64 samples of 10–32 ms (32 twice) after the youth: the raw spread, the stalls of the youth forgotten.
        for (var i = 0; i < 8; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(20), newConnection: false, answered: true);
        }

        for (var i = 0; i < 64; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i % 23)), newConnection: false, answered: true);
        }

        Assert.Equal(64, pacing.WarmSamples);
        Assert.Equal(b + 22, pacing.Margin.TotalMilliseconds, precision: 3);
    }
}
