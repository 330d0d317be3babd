namespace Worker.Host.Operations;

/// <summary>
/// Once every hosted service has started (the OpenTelemetry exporter among them, so it listens), creates the counter
/// series the alerts read with <c>increase()</c> at 0 (<see cref="WorkerMetrics.StartAlertedSeriesAtZero"/>).
/// </summary>
internal sealed class AlertedSeriesInitializer(WorkerMetrics metrics) : IHostedLifecycleService
{
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        metrics.StartAlertedSeriesAtZero();
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
