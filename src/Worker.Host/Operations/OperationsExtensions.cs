using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Worker.Host.Operations;

/// <summary>
/// The operational shell: JSON logs on stdout (with trace ids), health checks, OpenTelemetry metrics in Prometheus format,
/// OpenTelemetry traces (exported over OTLP only when <see cref="OtlpEndpointSetting"/> is set), the
/// database gauges and the graceful-shutdown timeout (section <see cref="OperationsOptions.SectionName"/>).
/// </summary>
public static class OperationsExtensions
{
    /// <summary>Service name reported as the OpenTelemetry resource (<c>service.name</c>).</summary>
    public const string ServiceName = "gong-flow-worker";

    /// <summary>Setting (environment variable) that turns the OTLP trace exporter on, e.g. <c>http://otel-collector:4317</c>.</summary>
    public const string OtlpEndpointSetting = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <summary>Adds logging, health checks, metrics and shutdown settings.</summary>
    /// <param name="builder">The host builder (a <c>NpgsqlDataSource</c> must be registered, see AddWorkerPersistence).</param>
    public static IHostApplicationBuilder AddWorkerOperations(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<OperationsOptions>()
            .BindConfiguration(OperationsOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();

        // SIGTERM: the host gives hosted services this long to stop (dispatch finishes or releases its batches,
        // the relay flushes) before it gives up; Kubernetes' grace period must exceed it.
        builder.Services.AddOptions<HostOptions>()
            .Configure<IOptions<OperationsOptions>>((host, operations) => host.ShutdownTimeout = operations.Value.ShutdownTimeout);

        builder.AddWorkerLogging();

        builder.Services.AddSingleton<PendingMigrationsHealthCheck>();
        builder.Services.AddHostedService<PendingMigrationsNotice>();
        var checks = builder.Services.AddHealthChecks()
            .AddNpgSql(name: "postgres", tags: [HealthEndpoints.ReadyTag])
            .AddCheck<PendingMigrationsHealthCheck>("migrations", tags: [HealthEndpoints.ReadyTag])
            .AddCheck<GongCredentialsHealthCheck>("gong", tags: [HealthEndpoints.ReadyTag])
            .AddCheck<ShutdownHealthCheck>("shutdown", tags: [HealthEndpoints.ReadyTag])
            .AddCheck<BusStartHealthCheck>("bus-start", tags: [HealthEndpoints.LiveTag]);

        // A replica that does not dispatch (Dispatch:Enabled=false) has no loop whose heartbeat could go stale.
        if (builder.Configuration.GetValue("Dispatch:Enabled", true))
        {
            checks.AddCheck<DispatchHeartbeatHealthCheck>("dispatch", tags: [HealthEndpoints.ReadyTag]);
        }

        // Every check (MassTransit's bus check included, registered by AddMassTransit) gets the same time limit.
        builder.Services.AddOptions<HealthCheckServiceOptions>()
            .PostConfigure<IOptions<OperationsOptions>>((health, operations) =>
            {
                foreach (var registration in health.Registrations.Where(r => r.Timeout == Timeout.InfiniteTimeSpan))
                {
                    registration.Timeout = operations.Value.HealthCheckTimeout;
                }
            });

        builder.Services.AddHostedService<AlertedSeriesInitializer>();
        builder.Services.AddSingleton<DatabaseGauges>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<DatabaseGauges>());
        builder.Services.AddSingleton<PriorityLaneGauges>();

        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(ServiceName))
            .WithMetrics(metrics => metrics
                .AddMeter(WorkerMetrics.MeterName)
                .AddMeter("MassTransit")
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddNpgsqlInstrumentation()
                .AddPrometheusExporter())
            .WithTracing(tracing =>
            {
                tracing
                    .AddSource(WorkerTracing.SourceName)
                    .AddSource(MassTransit.Logging.DiagnosticHeaders.DefaultListenerName)
                    .AddHttpClientInstrumentation();

                // Off unless an endpoint is configured (OTEL_EXPORTER_OTLP_ENDPOINT; the exporter reads the other OTEL_* settings itself).
                if (!string.IsNullOrWhiteSpace(builder.Configuration[OtlpEndpointSetting]))
                {
                    tracing.AddOtlpExporter();
                }
            });
        return builder;
    }

    /// <summary>
    /// Structured JSON logs on stdout, one object per line, with scopes (trace ids) and UTC timestamps.
    /// Used by every subcommand that logs.
    /// </summary>
    /// <param name="builder">The host builder.</param>
    public static IHostApplicationBuilder AddWorkerLogging(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Logging.ClearProviders();

        // Every line logged inside a span (a batch, a consumed message, a Gong call) carries its TraceId and SpanId as a scope.
        builder.Logging.Configure(options => options.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId | ActivityTrackingOptions.ParentId);
        builder.Logging.AddJsonConsole(options =>
        {
            options.IncludeScopes = true;
            options.UseUtcTimestamp = true;
            options.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
            options.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false };
        });
        return builder;
    }

    /// <summary>Maps <c>/health/live</c>, <c>/health/ready</c> and <c>/metrics</c>.</summary>
    /// <param name="app">The built application.</param>
    public static WebApplication MapWorkerOperationsEndpoints(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapHealthChecks(HealthEndpoints.LivePath, new HealthCheckOptions
        {
            Predicate = registration => registration.Tags.Contains(HealthEndpoints.LiveTag),
            ResponseWriter = HealthResponseWriter.WriteAsync,
        });
        app.MapHealthChecks(HealthEndpoints.ReadyPath, new HealthCheckOptions
        {
            Predicate = registration => registration.Tags.Contains(HealthEndpoints.ReadyTag),
            ResponseWriter = HealthResponseWriter.WriteAsync,
            ResultStatusCodes =
            {
                [HealthStatus.Healthy] = StatusCodes.Status200OK,
                [HealthStatus.Degraded] = StatusCodes.Status200OK,
                [HealthStatus.Unhealthy] = StatusCodes.Status503ServiceUnavailable,
            },
        });
        app.MapPrometheusScrapingEndpoint(HealthEndpoints.MetricsPath);
        return app;
    }
}
