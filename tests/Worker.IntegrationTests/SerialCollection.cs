namespace Worker.IntegrationTests;

/// <summary>
/// Tests that must not share the machine with the parallel ones:
/// <list type="bullet">
/// <item>those that read <c>/metrics</c>: OpenTelemetry subscribes to meters by name process-wide, so a host's exporter
/// would also see the <c>Worker</c> meters of other in-process hosts started by tests running in parallel;</item>
/// <item>those that measure real-time call rates (the rate gate at 3 calls/s for 10 s): on this 2-core machine, parallel
/// test hosts starve the senders and the "not starved" bound measures the load, not the gate.</item>
/// </list>
/// xunit runs this collection after the parallel ones, alone.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "serial (timing-sensitive or process-wide)";
}
