using Microsoft.Extensions.Configuration;
using Npgsql;
using Worker.Host.Persistence;

namespace Worker.Host.Operations;

/// <summary>The <c>status</c> subcommand: prints <see cref="StatusReport"/> for <c>ConnectionStrings:Postgres</c>.</summary>
public static class StatusCommand
{
    /// <summary>Configuration key of Gong's daily call budget, shown beside today's count (default 10,000).</summary>
    public const string DailyCallLimitKey = "Gong:DailyCallLimit";

    /// <summary>Default of <see cref="DailyCallLimitKey"/> (Gong's documented 10,000 calls per day).</summary>
    public const int DefaultDailyCallLimit = 10_000;

    /// <summary>Reads and prints the report; returns the exit code (0, or 1 when the database cannot be read).</summary>
    /// <param name="args">Configuration arguments.</param>
    /// <param name="output">Standard output.</param>
    /// <param name="error">Standard error.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = WorkerHost.ContentRoot });
        builder.Logging.ClearProviders();
        builder.AddWorkerPersistence();
        using var host = builder.Build();
        var dailyCallLimit = builder.Configuration.GetValue(DailyCallLimitKey, DefaultDailyCallLimit);
        var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();
        var now = host.Services.GetService<TimeProvider>()?.GetUtcNow() ?? TimeProvider.System.GetUtcNow();
        try
        {
            var report = await StatusReportReader.LoadAsync(dataSource, now, dailyCallLimit, cancellationToken).ConfigureAwait(false)
                with { Lanes = await PriorityLaneReport.LoadAsync(dataSource, cancellationToken).ConfigureAwait(false) };
            report.Render(output);
            return 0;
        }
        catch (NpgsqlException ex)
        {
            await error.WriteLineAsync($"Cannot read the worker database (ConnectionStrings:Postgres): {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }
}
