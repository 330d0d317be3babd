namespace Worker.Host.Dispatch;

/// <summary>Registers the dispatcher with its validated options.</summary>
public static class DispatchExtensions
{
    /// <summary>
    /// Adds <c>Dispatch</c> options (validated at start, messages name the setting), the dispatcher's stores and its
    /// hosted service. <c>Dispatch:MaxBatchSize</c> falls back to <c>Gong:MaxBatchSize</c>.
    /// Needs an <see cref="IGongBatchSender"/> and <see cref="IGongDispatchState"/> (implemented by the Gong client), persistence,
    /// <see cref="TimeProvider"/>, <see cref="Operations.WorkerMetrics"/>, <see cref="Operations.DispatchHeartbeat"/> and the
    /// relay's <see cref="Relay.OutboxSignal"/> (<see cref="Relay.RelayExtensions.AddRelay"/>, called before this so the
    /// relay stops after the dispatcher). <c>Dispatch:Enabled=false</c> (read at registration) leaves the dispatcher out:
    /// a replica that only ingests and relays, or a test host that must not call Gong.
    /// </summary>
    public static IHostApplicationBuilder AddDispatch(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<DispatchOptions>().BindConfiguration(DispatchOptions.SectionName)
            .Configure<IConfiguration>(FallBackToGongBatchLimit).ValidateDataAnnotations().ValidateOnStart();

        // The leases hold outcome-unknown prospects until their call can no longer commit (Gong:AttemptTimeout or
        // Gong:ServerCommitBound, plus Gong:ReconcileDelay); the Gong client validates the section.
        builder.Services.AddOptions<Gong.GongOptions>().BindConfiguration(Gong.GongOptions.SectionName);
        builder.Services.AddSingleton<ProspectStateMachine>();
        builder.Services.AddSingleton<PendingGroupQuery>();
        builder.Services.AddSingleton<BatchClaimer>();
        builder.Services.AddSingleton<BatchLeases>();
        builder.Services.AddSingleton<OutcomeWriter>();

        builder.Services.AddSingleton<PriorityLanePolicy>();
        if (builder.Configuration.GetValue($"{DispatchOptions.SectionName}:Enabled", true))
        {
            builder.Services.AddHostedService<DispatcherService>();
        }

        return builder;
    }

    /// <summary><c>Dispatch:MaxBatchSize</c> unset: <c>Gong:MaxBatchSize</c> when that is set.</summary>
    private static void FallBackToGongBatchLimit(DispatchOptions options, IConfiguration configuration)
    {
        if (configuration[$"{DispatchOptions.SectionName}:{nameof(DispatchOptions.MaxBatchSize)}"] is null
            && configuration.GetValue<int?>("Gong:MaxBatchSize") is { } gongLimit)
        {
            options.MaxBatchSize = gongLimit;
        }
    }
}
