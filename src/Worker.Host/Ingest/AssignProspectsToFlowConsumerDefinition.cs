using MassTransit;
using MassTransit.Middleware;
using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Messaging;
using Worker.Host.Operations;

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
    private readonly WorkerMetrics metrics;

    /// <summary>Creates the definition from the validated options.</summary>
    public AssignProspectsToFlowConsumerDefinition(IOptions<IngestOptions> ingest, IOptions<RabbitMqOptions> rabbitMq, WorkerMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(ingest);
        ArgumentNullException.ThrowIfNull(rabbitMq);
        ArgumentNullException.ThrowIfNull(metrics);
        this.ingest = ingest.Value;
        this.rabbitMq = rabbitMq.Value;
        this.metrics = metrics;
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

        // MassTransit's default error pipe (a Fault event, then the move to the _error queue), counted first, so an
        // alert sees error-queue inflow without RabbitMQ's own exporter.
        endpointConfigurator.ConfigureError(error =>
        {
            error.UseFilter(new ErrorQueueCountFilter(metrics));
            error.UseFilter(new GenerateFaultFilter());
            error.UseFilter(new ErrorTransportFilter());
        });

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
