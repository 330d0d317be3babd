namespace Gong.Simulator;

/// <summary>
/// "Another integration" of the same company: spends <see cref="FaultOptions.ForeignCallsPerSecond"/> calls per
/// second of the shared quota, evenly spaced on the simulator's clock, and restarts its schedule whenever the faults
/// change.
/// </summary>
internal sealed class ForeignTraffic(SimulatorState state) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var (faults, changed) = state.FaultsWithChangeToken();
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, changed);
            try
            {
                if (faults.ForeignCallsPerSecond <= 0)
                {
                    await Task.Delay(Timeout.InfiniteTimeSpan, linked.Token).ConfigureAwait(false);
                    continue;
                }

                await Task.Delay(TimeSpan.FromSeconds(1 / faults.ForeignCallsPerSecond), state.Time, linked.Token).ConfigureAwait(false);
                state.SpendForeignCall();
            }
            catch (OperationCanceledException) when (linked.IsCancellationRequested)
            {
                // Faults changed (read them again) or the simulator stops.
            }
        }
    }
}
