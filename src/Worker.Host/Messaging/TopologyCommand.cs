using System.CommandLine;

namespace Worker.Host.Messaging;

/// <summary>The <c>topology</c> subcommand: declares the broker topology only (<see cref="BrokerTopology"/>); <c>migrate</c> runs it too.</summary>
public static class TopologyCommand
{
    /// <summary>Builds the command; settings are passed as <c>--Section:Key=value</c> like every subcommand's.</summary>
    public static Command Create()
    {
        var topology = new Command("topology", "Declare the RabbitMQ exchanges, queues and bindings (also done by migrate) and exit.") { TreatUnmatchedTokensAsErrors = false };
        topology.SetAction((parse, ct) => WorkerCommands.Guarded(parse, args => BrokerTopology.DeployAsync(args, ct)));
        return topology;
    }
}
