using MassTransit;
using MassTransit.Middleware;
using Microsoft.Extensions.Options;
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
/// <remarks>
/// A database outage never sends a message to the error queue: after <see cref="IngestOptions.TransientRetryLimit"/>
/// retries in place the message goes back to the queue (<see cref="IngestErrorFilter"/>), and MassTransit's kill switch
/// (<c>UseKillSwitch</c>, counting only <see cref="DatabaseOutage"/> failures) stops the endpoint for
/// <see cref="IngestOptions.OutagePause"/>, then starts it again; the first outage failure after a restart stops it
/// again at once. So during an outage the messages wait Ready in the queue, none is held unacknowledged for long
/// (RabbitMQ's consumer timeout is 30 minutes), and consuming resumes by itself once Postgres answers.
/// </remarks>
public sealed class AssignProspectsToFlowConsumerDefinition : ConsumerDefinition<AssignProspectsToFlowConsumer>
{
    /// <summary>
    /// Kill switch: it may trip once more than this many messages were consumed in its tracking period (MassTransit
    /// counts attempts strictly above the threshold), so two messages in a row failing on an unreachable database stop it.
    /// </summary>
    internal const int KillSwitchActivationThreshold = 1;

    /// <summary>Kill switch: percentage of the tracking period's messages failing on the database that stops the endpoint.</summary>
    internal const int KillSwitchTripThreshold = 10;

    /// <summary>Kill switch: the window its counts cover; they reset after it (so a busy healthy minute cannot mask an outage for longer).</summary>
    internal static readonly TimeSpan KillSwitchTrackingPeriod = TimeSpan.FromMinutes(1);

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

        // Only an unreachable or overloaded database is worth retrying; invalid content never throws, and a
        // conflict or unusable requestId goes straight to the error queue.
        consumerConfigurator.UseMessageRetry(r =>
        {
            r.Handle<Exception>(DatabaseOutage.IsOutage);
            r.Exponential(ingest.TransientRetryLimit, ingest.RetryMinInterval, ingest.RetryMaxInterval, ingest.RetryMinInterval);
        });

        endpointConfigurator.UseKillSwitch(k => k
            .SetActivationThreshold(KillSwitchActivationThreshold)
            .SetTripThreshold(KillSwitchTripThreshold)
            .SetTrackingPeriod(KillSwitchTrackingPeriod)
            .SetRestartTimeout(ingest.OutagePause)
            .SetExceptionFilter(f => f.Handle<Exception>(DatabaseOutage.IsOutage)));

        // MassTransit's default error pipe (fault event, move to _error) behind IngestErrorFilter, which sends outage
        // failures back to the queue instead and counts unreadable bodies and, by reason, what goes on to the error queue.
        endpointConfigurator.ConfigureError(e =>
        {
            e.UseFilter(new IngestErrorFilter(metrics));
            e.UseFilter(new GenerateFaultFilter());
            e.UseFilter(new ErrorTransportFilter());
        });
    }
}
