namespace Worker.IntegrationTests.Operations;

/// <summary>
/// Tests that read <c>/metrics</c> run alone: OpenTelemetry subscribes to meters by name process-wide, so a host's
/// exporter would also see the <c>Worker</c> meters of other in-process hosts started by tests running in parallel.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MetricsCollection
{
    public const string Name = "metrics (not parallel)";
}
