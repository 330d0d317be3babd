using Microsoft.Extensions.Time.Testing;
using Microsoft.Extensions.Options;
using Worker.Host.Gong;

namespace Worker.UnitTests.RateGate;

/// <summary>The jitter allowance learned from few round trips (a process's first warm-ups) is scaled up to the range
/// those samples suggest, not taken at their raw spread.</summary>
public sealed class RateGatePacingSpreadTests
{
    [Fact]
    public void Few_round_trips_give_their_spread_scaled_by_n_plus_1_over_n_minus_1_and_a_full_window_its_raw_spread()
    {
        // No initial allowance, so the young process's floor does not hide the learned spread.
        var pacing = new RateGatePacing(Options.Create(new GongOptions { InitialJitterAllowance = TimeSpan.Zero }), new FakeTimeProvider());
        var b = new GongOptions().RateWindowMargin.TotalMilliseconds;
        for (var i = 0; i < 11; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i * 2)), newConnection: false, answered: true);
        }

        Assert.False(pacing.Learned);
        Assert.Equal(11, pacing.WarmSamples);

        // 12 samples of 10–32 ms: spread 22 ms, scaled by 13 / 11.
        pacing.RecordWarmUp(TimeSpan.FromMilliseconds(32), newConnection: false, answered: true);
        Assert.True(pacing.Learned);
        Assert.Equal(b + (22 * 13 / 11.0), pacing.Margin.TotalMilliseconds, precision: 3);

        // 256 samples (a full window), same spread: the raw spread.
        for (var i = 0; i < 244; i++)
        {
            pacing.RecordWarmUp(TimeSpan.FromMilliseconds(10 + (i % 23)), newConnection: false, answered: true);
        }

        Assert.Equal(256, pacing.WarmSamples);
        Assert.Equal(b + 22, pacing.Margin.TotalMilliseconds, precision: 3);
    }
}
