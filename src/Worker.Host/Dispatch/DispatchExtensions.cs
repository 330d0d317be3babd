using Worker.Host.Operations.Retention;
using Worker.Host.Relay;

namespace Worker.Host.Dispatch;

/// <summary>Registers the dispatcher, the outbox relay and the retention job with their validated options.</summary>
public static class DispatchExtensions
{
    /// <summary>
    /// Adds <c>Dispatch</c>, <c>Relay</c> and <c>Retention</c> options (validated at start, messages name the setting) and
    /// the three hosted services. <c>Dispatch:MaxBatchSize</c> falls back to <c>Gong:MaxBatchSize</c>.
    /// Needs an <see cref="Gong.IGongBatchSender"/> and <see cref="Gong.IGongDispatchState"/> (the Gong client), MassTransit,
    /// persistence, <see cref="TimeProvider"/>, <see cref="Operations.WorkerMetrics"/> and <see cref="Operations.DispatchHeartbeat"/>.
    /// <c>Dispatch:Enabled=false</c> (read at registration) leaves the dispatcher out: a replica that only ingests and
    /// relays, or a test host that must not call Gong.
    /// </summary>
    public static IHostApplicationBuilder AddDispatch(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<DispatchOptions>()
            .BindConfiguration(DispatchOptions.SectionName)
            .Configure<IConfiguration>((options, configuration) =>
            {
                if (configuration[$"{DispatchOptions.SectionName}:{nameof(DispatchOptions.MaxBatchSize)}"] is null
                    && configuration.GetValue<int?>("Gong:MaxBatchSize") is { } gongLimit)
                {
                    options.MaxBatchSize = gongLimit;
                }
            })
            .ValidateDataAnnotations()
            .ValidateOnStart();

        // The store holds outcome-unknown prospects until their call can no longer commit (Gong:AttemptTimeout or
        // Gong:ServerCommitBound, plus Gong:ReconcileDelay); the Gong client validates the section.
        builder.Services.AddOptions<Gong.GongOptions>().BindConfiguration(Gong.GongOptions.SectionName);
        builder.Services.AddOptions<RelayOptions>().BindConfiguration(RelayOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<RetentionOptions>().BindConfiguration(RetentionOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        builder.Services.AddSingleton<OutboxSignal>();
        builder.Services.AddSingleton<RelayPublishState>();
        builder.Services.AddHealthChecks().AddCheck<RelayHealthCheck>("relay", tags: [Operations.HealthEndpoints.ReadyTag]);
        builder.Services.AddSingleton<DispatchStore>();
        builder.Services.AddSingleton<PriorityLanePolicy>();

        // Hosted services stop in reverse order: the dispatcher first (its last outcomes reach the outbox), then the relay
        // flushes them.
        builder.Services.AddHostedService<OutboxRelayService>();
        if (builder.Configuration.GetValue($"{DispatchOptions.SectionName}:Enabled", true))
        {
            builder.Services.AddHostedService<DispatcherService>();
        }

        builder.Services.AddHostedService<RetentionService>();
        return builder;
    }
}
