using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Messaging;

namespace Worker.Host.Ingest;

/// <summary>
/// The receive endpoint of <see cref="AssignProspectsToFlowConsumer"/>: queue <see cref="IngestOptions.QueueName"/>
/// (durable; a quorum queue when <c>RabbitMq:UseQuorumQueues</c>), bound by MassTransit's topology to the exchange
/// <c>Worker.Contracts:AssignProspectsToFlow</c>. It reads the MassTransit envelope
/// (<c>application/vnd.masstransit+json</c>) and plain JSON (<c>application/json</c>, or no content type) of
/// any publisher, and retries transient Postgres failures with exponential backoff.
/// </summary>
public sealed class AssignProspectsToFlowConsumerDefinition : ConsumerDefinition<AssignProspectsToFlowConsumer>
{
    private readonly IngestOptions ingest;
    private readonly RabbitMqOptions rabbitMq;

    /// <summary>Creates the definition from the validated options.</summary>
    public AssignProspectsToFlowConsumerDefinition(IOptions<IngestOptions> ingest, IOptions<RabbitMqOptions> rabbitMq)
    {
        ArgumentNullException.ThrowIfNull(ingest);
        ArgumentNullException.ThrowIfNull(rabbitMq);
        this.ingest = ingest.Value;
        this.rabbitMq = rabbitMq.Value;
        EndpointName = IngestOptions.QueueName;
    }

    /// <inheritdoc />
    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<AssignProspectsToFlowConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        ArgumentNullException.ThrowIfNull(endpointConfigurator);
        ArgumentNullException.ThrowIfNull(consumerConfigurator);

        // Non-.NET publishers send the bare JSON object; the envelope keeps its own content type and deserializer.
        endpointConfigurator.UseRawJsonDeserializer(RawSerializerOptions.AnyMessageType | RawSerializerOptions.AddTransportHeaders, isDefault: true);
        endpointConfigurator.PrefetchCount = rabbitMq.PrefetchCount;
        if (endpointConfigurator is IRabbitMqReceiveEndpointConfigurator rabbit && rabbitMq.UseQuorumQueues)
        {
            rabbit.SetQuorumQueue();
        }

        // Only an unreachable or overloaded database is worth retrying; invalid content never throws, and a
        // conflict or unusable requestId goes straight to the error queue.
        consumerConfigurator.UseMessageRetry(r =>
        {
            r.Handle<NpgsqlException>(ex => ex.IsTransient || ex.InnerException is System.Net.Sockets.SocketException or IOException or TimeoutException);
            r.Handle<TimeoutException>();
            r.Handle<System.Net.Sockets.SocketException>();
            r.Exponential(ingest.TransientRetryLimit, ingest.RetryMinInterval, ingest.RetryMaxInterval, ingest.RetryMinInterval);
        });
    }
}
