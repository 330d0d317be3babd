using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Worker.Host.Dispatch;

namespace Worker.Host.Gong;

/// <summary>Registers the Gong client: options, the typed HttpClient with its Polly pipeline, the shared rate gate,
/// <see cref="IGongBatchSender"/> (the send loop and the parts it composes: gated caller, unknown-outcome reconciler,
/// batch size guard, call recorder) and <see cref="IGongDispatchState"/>.</summary>
public static class GongExtensions
{
    /// <summary>
    /// Adds the Gong client. Options are validated at start (<c>ValidateOnStart</c>): a missing or doubled auth mode,
    /// plain http to a non-loopback host or an out-of-range number stops the host with a message naming the setting
    /// and its environment variable.
    /// </summary>
    /// <remarks>
    /// The Polly pipeline, outermost first (not the standard handler: its retry resends a POST after a timeout and
    /// its breaker never opens at 3 calls/s):
    /// <list type="number">
    /// <item>Retry: only attempts that never reached Gong (connection refused, DNS failure; see
    /// <see cref="GongCallClassifier.IsNotSent"/>), <c>ConnectRetryCount</c> times (default 3), exponential from
    /// <c>ConnectRetryDelay</c> (200 ms) with jitter. Never a timeout, a reset or any HTTP status.</item>
    /// <item>Circuit breaker: opens when at least half (<c>CircuitBreakerFailureRatio</c> 0.5) of at least 10 calls
    /// (<c>CircuitBreakerMinimumThroughput</c>) in 30 s (<c>CircuitBreakerSamplingDuration</c>) were timeouts, network
    /// errors or 500/502/503/504, and stays open 15 s (<c>CircuitBreakerBreakDuration</c>). At 3 calls/s a 30 s window
    /// holds at most 90 calls for the whole company, fewer per replica, so the standard handler's minimum of 100
    /// would never be reached; 10 is about 3 s of full-rate traffic. 429s are not failures (the gate handles them).</item>
    /// <item>Timeout per attempt: <c>AttemptTimeout</c> (90 s; Gong reads the prospects from the CRM).</item>
    /// </list>
    /// </remarks>
    /// <exception cref="ArgumentNullException">When <paramref name="builder"/> is null.</exception>
    public static IHostApplicationBuilder AddGongClient(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.TryAddSingletonTimeProvider();
        services.AddOptions<GongOptions>()
            .BindConfiguration(GongOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<GongOptions>, GongOptionsValidator>();

        services.AddSingleton<PostgresRateGate>();
        services.AddSingleton<RateGateBlockReader>(sp => new RateGateBlockReader(
            sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), sp.GetRequiredService<IOptions<GongOptions>>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<CredentialsPauseStore>();
        services.AddSingleton<RateGatePacing>();
        services.AddSingleton<GongConnectionLanes>();
        services.AddSingleton<GongBatchLimit>();
        services.AddSingleton<GongDispatchState>();
        services.AddSingleton<IGongDispatchState>(sp => sp.GetRequiredService<GongDispatchState>());
        services.AddSingleton<GongCallRecorder>();
        services.AddSingleton<BatchSizeGuard>();
        services.AddSingleton<TooManyRequestsBackoff>();
        services.AddTransient<GongAnswerEffects>();
        services.AddTransient<GongGatedCaller>();
        services.AddTransient<UnknownOutcomeReconciler>();
        services.AddTransient<IGongBatchSender, GongBatchSender>();

        services.AddHttpClient<GongApiClient>((sp, client) =>
            {
                var o = sp.GetRequiredService<IOptions<GongOptions>>().Value;
                client.BaseAddress = o.GetBaseUri();
                client.DefaultRequestHeaders.Authorization = Authorization(o);
                client.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));

                // Polly bounds every attempt; HttpClient's own timeout would cut a slow but legitimate call short.
                client.Timeout = Timeout.InfiniteTimeSpan;
            })
            // One long-lived connection per concurrent send, warmed before each call and rotated only at a warm-up
            // (ConnectionLifetime), so no call pays a handshake after its slot. The factory must not rotate the handler
            // either: a new handler would mean new, cold connections.
            .ConfigurePrimaryHttpMessageHandler(sp => new GongLaneRoutingHandler(sp.GetRequiredService<GongConnectionLanes>()))
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan)
            .RedactLoggedHeaders(["Authorization"])
            .AddResilienceHandler(PipelineName, (pipeline, context) =>
            {
                var o = context.ServiceProvider.GetRequiredService<IOptions<GongOptions>>().Value;
                if (o.ConnectRetryCount > 0)
                {
                    pipeline.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
                    {
                        ShouldHandle = args => ValueTask.FromResult(!IsWarmUp(args.Context) && args.Outcome.Exception is { } ex && GongCallClassifier.IsNotSent(ex) && ex is not BrokenCircuitException),
                        MaxRetryAttempts = o.ConnectRetryCount,
                        Delay = o.ConnectRetryDelay,
                        BackoffType = DelayBackoffType.Exponential,
                        UseJitter = true,
                    });
                }

                pipeline.AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
                {
                    ShouldHandle = args => ValueTask.FromResult(!IsWarmUp(args.Context) && GongCallClassifier.IsServiceFailure(args.Outcome.Result, args.Outcome.Exception)),
                    FailureRatio = o.CircuitBreakerFailureRatio,
                    MinimumThroughput = o.CircuitBreakerMinimumThroughput,
                    SamplingDuration = o.CircuitBreakerSamplingDuration,
                    BreakDuration = o.CircuitBreakerBreakDuration,
                });
                pipeline.AddTimeout(o.AttemptTimeout);
            });
        return builder;
    }

    /// <summary>Name of the Polly pipeline on the Gong HttpClient (appears in resilience telemetry).</summary>
    public const string PipelineName = "gong";

    /// <summary>A warm-up request (<see cref="GongApiClient.WarmUpAsync"/>) is neither retried nor counted by the breaker.</summary>
    private static bool IsWarmUp(ResilienceContext context) =>
        context.GetRequestMessage()?.Options.TryGetValue(GongConnectionLanes.WarmUpKey, out var warmUp) == true && warmUp;

    private static AuthenticationHeaderValue Authorization(GongOptions o) =>
        string.IsNullOrWhiteSpace(o.BearerToken)
            ? new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{o.AccessKey}:{o.AccessKeySecret}")))
            : new AuthenticationHeaderValue("Bearer", o.BearerToken.Trim());

    private static void TryAddSingletonTimeProvider(this IServiceCollection services)
    {
        if (!services.Any(d => d.ServiceType == typeof(TimeProvider)))
        {
            services.AddSingleton(TimeProvider.System);
        }
    }
}
