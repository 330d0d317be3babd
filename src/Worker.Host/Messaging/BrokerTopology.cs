using MassTransit;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using Worker.Host.Ingest;
using Worker.Host.Operations;

namespace Worker.Host.Messaging;

/// <summary>
/// Declares the worker's RabbitMQ topology without consuming (MassTransit's <c>DeployTopologyOnly</c> and
/// <c>DeployAsync</c>): the command exchange <c>Worker.Contracts:AssignProspectsToFlow</c>, the endpoint exchange and
/// queue <c>assign-prospects-to-flow</c> with their bindings, its <c>_error</c> and <c>_skipped</c> queues, and the
/// result exchange <c>Worker.Contracts:FlowAssignmentCompleted</c>. Run by <c>migrate</c> and by <c>topology</c>, so a
/// request published before the first worker starts (or while none runs) waits in the queue instead of being dropped
/// by an exchange with no binding.
/// </summary>
/// <remarks>
/// The declarations come from the same registration the worker uses (<see cref="MessagingExtensions.AddWorkerMessaging"/>),
/// so names and arguments (e.g. a quorum queue when <c>RabbitMq:UseQuorumQueues</c>) cannot drift from what the worker
/// declares at start. Declaring is idempotent: running it again, or beside running workers, changes nothing.
/// </remarks>
public static class BrokerTopology
{
    /// <summary>Longest time to reach the broker and declare everything (2 min) before giving up with exit code 1.</summary>
    public static readonly TimeSpan DeployTimeout = TimeSpan.FromMinutes(2);

    /// <summary>The command queue's error queue (and exchange): MassTransit's <c>&lt;queue&gt;_error</c> convention.</summary>
    public const string ErrorQueueName = IngestOptions.QueueName + "_error";

    /// <summary>Declares the topology on the broker of <c>RabbitMq:*</c>; returns the process exit code (0 on success, 1 on failure).</summary>
    /// <param name="args">Configuration arguments.</param>
    /// <param name="cancellationToken">Stops the deployment.</param>
    public static async Task<int> DeployAsync(string[] args, CancellationToken cancellationToken)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = WorkerHost.ContentRoot });
        builder.AddWorkerLogging();
        builder.AddWorkerIngest();
        builder.AddWorkerMessaging(deployTopologyOnly: true);

        // This host never consumes, so the consumers' dependencies (Postgres, the ingest writer) are not registered;
        // the Development environment's build-time validation would otherwise refuse to build it.
        builder.ConfigureContainer(new DefaultServiceProviderFactory(new ServiceProviderOptions { ValidateOnBuild = false, ValidateScopes = false }));
        using var host = builder.Build();
        var bus = host.Services.GetRequiredService<IBusControl>();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(DeployTimeout);
        try
        {
            await bus.DeployAsync(timeout.Token).ConfigureAwait(false);
            await DeclareErrorQueueAsync(host.Services.GetRequiredService<IOptions<RabbitMqOptions>>().Value, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException && !cancellationToken.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync($"Could not declare the RabbitMQ topology (RabbitMq:Host, RabbitMq:VirtualHost, RabbitMq:Username, RabbitMq:Password): {ex.Message}").ConfigureAwait(false);
            return 1;
        }

        await Console.Out.WriteLineAsync("Broker topology declared.").ConfigureAwait(false);
        return 0;
    }

    /// <summary>
    /// Declares <c>assign-prospects-to-flow_error</c> (exchange and queue, bound) as MassTransit does on the first fault:
    /// durable, fanout, and a quorum queue when the command queue is one. MassTransit declares it lazily, so without this
    /// it would not exist until a message first fails; with different arguments its own declaration would be refused.
    /// </summary>
    private static async Task DeclareErrorQueueAsync(RabbitMqOptions options, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory
        {
            HostName = options.Host,
            Port = options.Port,
            VirtualHost = options.VirtualHost,
            UserName = options.Username,
            Password = options.Password,
            ClientProvidedName = "gong-flow-worker topology",
        };
        await using var connection = await factory.CreateConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        var arguments = options.UseQuorumQueues ? new Dictionary<string, object?> { ["x-queue-type"] = "quorum" } : null;
        await channel.ExchangeDeclareAsync(ErrorQueueName, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueDeclareAsync(ErrorQueueName, durable: true, exclusive: false, autoDelete: false, arguments, cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueBindAsync(ErrorQueueName, ErrorQueueName, string.Empty, cancellationToken: cancellationToken).ConfigureAwait(false);
    }
}
