using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Host.Ingest;
using Worker.Host.Messaging;
using Worker.Host.Operations;
using Worker.Host.Operations.Retention;
using Worker.Host.Persistence;
using Worker.Host.Relay;

namespace Worker.Host;

/// <summary>
/// Composition root shared by <c>Program</c> and the in-process tests: one <c>Add…</c> extension per concern.
/// </summary>
public static class WorkerHost
{
    /// <summary>
    /// The folder of the worker's binaries, where <c>appsettings.json</c> is: the content root of every subcommand, so
    /// the settings file applies whatever the working directory (e.g. <c>dotnet path/to/Worker.Host.dll</c> from the repository root).
    /// </summary>
    public static string ContentRoot => AppContext.BaseDirectory;

    /// <summary>Creates a builder with every worker service registered; callers may add configuration before <c>Build</c>.</summary>
    /// <param name="args">Configuration arguments (e.g. <c>--RabbitMq:Host=…</c>).</param>
    public static WebApplicationBuilder CreateBuilder(string[] args)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = ContentRoot });
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<WorkerMetrics>();
        builder.Services.AddSingleton<DispatchHeartbeat>();
        builder.AddWorkerPersistence();
        builder.AddWorkerIngest();
        builder.AddWorkerMessaging();
        builder.AddGongClient();
        // Hosted services stop in reverse order: the dispatcher first (its last outcomes reach the outbox), then the
        // relay flushes them.
        builder.AddRelay();
        builder.AddDispatch();
        builder.AddRetention();
        builder.AddWorkerOperations();
        return builder;
    }

    /// <summary>Maps the HTTP endpoints (health, metrics).</summary>
    /// <param name="app">The built application.</param>
    public static void MapEndpoints(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapWorkerOperationsEndpoints();
    }
}
