using MassTransit;
using Microsoft.Extensions.Options;

namespace Worker.Host.Messaging;

/// <summary>MassTransit over RabbitMQ: consumers of this assembly on their definitions' endpoints.</summary>
public static class MessagingExtensions
{
    /// <summary>Adds MassTransit with the RabbitMQ transport configured from <see cref="RabbitMqOptions"/>.</summary>
    public static IHostApplicationBuilder AddWorkerMessaging(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<RabbitMqOptions>()
            .BindConfiguration(RabbitMqOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();

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
                cfg.ConfigureJsonSerializerOptions(Ingest.AssignProspectsToFlowJson.Configure);
                cfg.ConfigureEndpoints(context);
            });
        });
        return builder;
    }
}
