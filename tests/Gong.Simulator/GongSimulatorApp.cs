using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Gong.Simulator;

/// <summary>Builds and runs the simulator, standalone (<see cref="RunAsync"/>) or in-process (<see cref="StartAsync"/>).</summary>
public static class GongSimulatorApp
{
    /// <summary>Short command-line switches mapped onto the <c>Simulator</c> configuration section.</summary>
    public static IReadOnlyDictionary<string, string> SwitchMappings { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["--rps"] = "Simulator:RateLimit:RequestsPerSecond",
        ["--daily-limit"] = "Simulator:RateLimit:DailyCallLimit",
        ["--retry-after-mode"] = "Simulator:RateLimit:RetryAfterMode",
        ["--seed"] = "Simulator:Seed",
        ["--access-key"] = "Simulator:AccessKey",
        ["--access-key-secret"] = "Simulator:AccessKeySecret",
        ["--bearer-token"] = "Simulator:BearerToken",
        ["--batch-limit"] = "Simulator:Faults:BatchLimit",
        ["--latency-min-ms"] = "Simulator:Faults:LatencyMinMs",
        ["--latency-max-ms"] = "Simulator:Faults:LatencyMaxMs",
        ["--error-before-commit-rate"] = "Simulator:Faults:ErrorBeforeCommitRate",
        ["--error-after-commit-rate"] = "Simulator:Faults:ErrorAfterCommitRate",
        ["--reset-after-commit-rate"] = "Simulator:Faults:ResetAfterCommitRate",
        ["--timeout-after-commit-rate"] = "Simulator:Faults:TimeoutAfterCommitRate",
        ["--arrival-jitter-ms"] = "Simulator:Faults:ArrivalJitterMs",
        ["--new-connection-delay-ms"] = "Simulator:Faults:NewConnectionDelayMs",
        ["--foreign-calls-per-second"] = "Simulator:Faults:ForeignCallsPerSecond",
    };

    /// <summary>
    /// Runs the simulator until shutdown, configured from appsettings.json, <c>Simulator__*</c> environment
    /// variables, an optional <c>--config file.json</c> and the command line (<c>--urls</c>, <c>--Simulator:Key=value</c>
    /// or the short switches in <see cref="SwitchMappings"/>).
    /// </summary>
    public static async Task RunAsync(string[] args)
    {
        // Content root = the binary's folder, so its appsettings.json applies whatever the working directory.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        if (builder.Configuration["config"] is { Length: > 0 } file)
        {
            builder.Configuration.AddJsonFile(Path.GetFullPath(file), optional: false);
        }

        builder.Configuration.AddCommandLine(args, new Dictionary<string, string>(SwitchMappings));
        var options = builder.Configuration.GetSection(SimulatorOptions.SectionName).Get<SimulatorOptions>() ?? new SimulatorOptions();
        var app = Build(builder, options, TimeProvider.System);
        app.Logger.LogInformation(
            "Gong simulator: {RequestsPerSecond} calls/s, {DailyCallLimit} calls/day, batch limit {BatchLimit}, seed {Seed}",
            options.RateLimit.RequestsPerSecond,
            options.RateLimit.DailyCallLimit,
            options.Faults.BatchLimit,
            options.Seed);
        await app.RunAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Starts the simulator in this process on <paramref name="url"/> (port 0 picks a free port) and returns once it
    /// listens. Logging is off; read the call log instead.
    /// </summary>
    /// <param name="options">Start configuration; the caller must not change it afterwards.</param>
    /// <param name="url">Listen address, e.g. <c>http://127.0.0.1:0</c>.</param>
    /// <param name="timeProvider">Clock for rate limits, 401 periods, dates and delays; default the system clock.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<RunningSimulator> StartAsync(
        SimulatorOptions options,
        string url = "http://127.0.0.1:0",
        TimeProvider? timeProvider = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(GongSimulatorApp).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(url);
        var app = Build(builder, options, timeProvider ?? TimeProvider.System);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
            return new RunningSimulator(app, new Uri(address.TrimEnd('/') + "/"), app.Services.GetRequiredService<SimulatorState>());
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static WebApplication Build(WebApplicationBuilder builder, SimulatorOptions options, TimeProvider timeProvider)
    {
        builder.Services.AddSingleton(new SimulatorState(options, timeProvider));
        builder.Services.AddHostedService<ForeignTraffic>();
        builder.Services.ConfigureHttpJsonOptions(json => SimulatorJson.Configure(json.SerializerOptions));
        var app = builder.Build();
        app.UseSimulatedNetwork();
        app.MapGongEndpoints();
        app.MapAdminEndpoints();
        return app;
    }
}
