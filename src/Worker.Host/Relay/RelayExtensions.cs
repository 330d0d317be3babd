namespace Worker.Host.Relay;

/// <summary>Registers the outbox relay with its validated options.</summary>
public static class RelayExtensions
{
    /// <summary>
    /// Adds <c>Relay</c> options (validated at start), the <see cref="OutboxSignal"/> the dispatcher rings when it writes
    /// outbox rows (ingest does not ring it: its events wait for the next <c>Relay:PollInterval</c>), the relay's publish state and its readiness check (tag <c>ready</c>), and the relay hosted
    /// service. Needs MassTransit, persistence, <see cref="TimeProvider"/> and <see cref="Operations.WorkerMetrics"/>.
    /// Call before <see cref="Dispatch.DispatchExtensions.AddDispatch"/>: hosted services stop in reverse order, so the
    /// dispatcher stops first (its last outcomes reach the outbox) and the relay then flushes them.
    /// </summary>
    public static IHostApplicationBuilder AddRelay(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<RelayOptions>().BindConfiguration(RelayOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<OutboxSignal>();
        builder.Services.AddSingleton<RelayPublishState>();
        builder.Services.AddHealthChecks().AddCheck<RelayHealthCheck>("relay", tags: [Operations.HealthEndpoints.ReadyTag]);
        builder.Services.AddHostedService<OutboxRelayService>();
        return builder;
    }
}
