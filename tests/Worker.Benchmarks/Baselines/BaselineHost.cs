using System.Net.Http.Headers;
using System.Threading.RateLimiting;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Worker.Contracts;
using Worker.Testing;

namespace Worker.Benchmarks.Baselines;

/// <summary>The two designs a team would write instead of the worker.</summary>
internal enum BaselineKind
{
    /// <summary><see cref="BatchAssignConsumer"/>.</summary>
    BatchConsumer,

    /// <summary><see cref="PerMessageAssignConsumer"/>.</summary>
    PerMessage,
}

/// <summary>
/// One process of a baseline: a Generic Host wired the way MassTransit's and Microsoft's docs show, with nothing
/// from the worker but the message contract. Each host has its own limiter, as separate processes (replicas) would.
/// </summary>
internal static class BaselineHost
{
    /// <summary>
    /// Gong's documented 3 calls/s per company, applied per process here (the baselines have no shared gate) as one
    /// permit every 350 ms. A margin over the exact 1/3 s makes the baselines better: Gong counts calls as they
    /// arrive, and with 334 ms, send jitter put a 4th call inside a one-second window often enough that a batch
    /// consumer used 71 calls (11 of them 429) and 26.6 s for the compare workload, against 65 calls (5 of them 429)
    /// and 25.3 s with 350 ms (one replica, no faults, same machine).
    /// </summary>
    public static readonly TimeSpan DefaultPermitInterval = TimeSpan.FromMilliseconds(350);

    public static string QueueName(BaselineKind kind) => kind == BaselineKind.BatchConsumer ? "baseline-batch-assign" : "baseline-per-message-assign";

    /// <summary>Creates <c>baseline_outcomes</c> in the benchmark's throwaway database (a real deployment would use a migration).</summary>
    public static async Task CreateOutcomeTableAsync(string postgres)
    {
        await using var db = new BaselineDbContext(new DbContextOptionsBuilder<BaselineDbContext>().UseNpgsql(postgres).UseSnakeCaseNamingConvention().Options);
        await db.GetService<IRelationalDatabaseCreator>().CreateTablesAsync();
    }

    /// <summary>
    /// Starts one baseline process (returns once the bus is started); dispose the host to stop it. Its limiter hands
    /// out one permit every <paramref name="permitInterval"/> (<see cref="DefaultPermitInterval"/> for 3 calls/s).
    /// </summary>
    public static async Task<IHost> StartAsync(
        BaselineKind kind, string postgres, TestVirtualHost vhost, Uri gongBaseUrl, AuthenticationHeaderValue authorization, TimeSpan permitInterval)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter("Polly", LogLevel.None); // one Warning per retried attempt; the compare table counts them
        builder.Services.AddDbContext<BaselineDbContext>(o => o.UseNpgsql(postgres).UseSnakeCaseNamingConvention());

        // 3 calls/s as one permit per interval (DefaultPermitInterval). The literal "3 permits per second" bucket lets
        // 3 calls leave together at each refill, and with any jitter Gong's sliding one-second window then sees a 4th:
        // spacing the permits is the better setting.
        builder.Services.AddSingleton<RateLimiter>(_ => new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = 1,
            TokensPerPeriod = 1,
            ReplenishmentPeriod = permitInterval,
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        }));
        builder.Services.AddTransient<ClientSideRateLimitedHandler>();

        // Standard handler with its defaults (retries 429/5xx/timeouts 3 times honouring Retry-After, 10 s attempt
        // and 30 s total timeouts, circuit breaker); the limiter is added after it, so it sits inside the retries.
        var http = builder.Services.AddHttpClient<GongAssignClient>(c =>
        {
            c.BaseAddress = gongBaseUrl;
            c.DefaultRequestHeaders.Authorization = authorization;
        });
        http.AddStandardResilienceHandler();
        http.AddHttpMessageHandler<ClientSideRateLimitedHandler>();

        builder.Services.AddMassTransit(x =>
        {
            if (kind == BaselineKind.BatchConsumer)
            {
                // ConfigureEndpoints applies the batch options to the endpoint: PrefetchCount and ConcurrentMessageLimit
                // become at least MessageLimit x ConcurrencyLimit, as MassTransit's batch consumer docs ask.
                x.AddConsumer<BatchAssignConsumer>(c => c.Options<BatchOptions>(o => o
                        .SetMessageLimit(200)
                        .SetTimeLimit(s: 2)
                        .SetConcurrencyLimit(10)
                        .GroupBy<AssignProspectsToFlow, string>(m => $"{m.Message.FlowId}|{m.Message.FlowInstanceOwnerEmail?.Trim().ToUpperInvariant()}")))
                    .Endpoint(e => e.Name = QueueName(kind));
            }
            else
            {
                x.AddConsumer<PerMessageAssignConsumer>().Endpoint(e => e.Name = QueueName(kind));
            }

            x.UsingRabbitMq((context, cfg) =>
            {
                cfg.Host(vhost.Host, (ushort)vhost.Port, vhost.Name, h =>
                {
                    h.Username(vhost.Username);
                    h.Password(vhost.Password);
                });
                cfg.UseRawJsonDeserializer(RawSerializerOptions.AnyMessageType, isDefault: true);
                cfg.ConfigureEndpoints(context);
            });
        });
        builder.Services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);

        var host = builder.Build();
        await host.StartAsync();
        return host;
    }
}
