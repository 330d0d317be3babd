using MassTransit;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Worker.Host.Operations;
using Worker.Contracts;

namespace Worker.Host.Messaging;

/// <summary>MassTransit over RabbitMQ: consumers of this assembly on their definitions' endpoints.</summary>
public static class MessagingExtensions
{
    /// <summary>Adds MassTransit with the RabbitMQ transport configured from <see cref="RabbitMqOptions"/>.</summary>
    /// <param name="builder">The host builder.</param>
    /// <param name="deployTopologyOnly">Declare exchanges, queues and bindings only, never consume (see <see cref="BrokerTopology"/>).</param>
    public static IHostApplicationBuilder AddWorkerMessaging(this IHostApplicationBuilder builder, bool deployTopologyOnly = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<RabbitMqOptions>()
            .BindConfiguration(RabbitMqOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();

        // The command endpoint's definition counts error-queue inflow; hosts that only declare the topology need it too.
        builder.Services.AddMetrics();
        builder.Services.TryAddSingleton<WorkerMetrics>();

        builder.Services.AddMassTransit(x =>
        {
            // On by default, it reports host details to the vendor's server; this service's telemetry is its own /metrics.
            x.DisableUsageTelemetry();
            x.AddConsumers(typeof(MessagingExtensions).Assembly);
            x.UsingRabbitMq((context, cfg) =>
            {
                var options = context.GetRequiredService<IOptions<RabbitMqOptions>>().Value;
                cfg.Host(options.Host, (ushort)options.Port, options.VirtualHost, h =>
                {
                    h.Username(options.Username);
                    h.Password(options.Password);
                });
                cfg.PrefetchCount = options.PrefetchCount;
                cfg.DeployTopologyOnly = deployTopologyOnly;

                // The result exchange exists from the start, so a subscriber can bind its queue before the first event.
                cfg.DeployPublishTopology = true;
                cfg.Publish<FlowAssignmentCompleted>();
                cfg.ConfigureJsonSerializerOptions(Ingest.AssignProspectsToFlowJson.Configure);
                cfg.ConfigureEndpoints(context);
            });
        });
        return builder;
    }
}
