using Microsoft.EntityFrameworkCore;
using Worker.Host.Persistence;
using Worker.Persistence;

namespace Worker.Host.Operations;

/// <summary>The <c>migrate</c> subcommand: applies pending EF Core migrations to <c>ConnectionStrings:Postgres</c>.</summary>
public static class DatabaseMigrator
{
    /// <summary>Applies every pending migration; returns the process exit code (0 on success).</summary>
    /// <param name="args">Configuration arguments.</param>
    /// <param name="cancellationToken">Stops the migration.</param>
    public static async Task<int> MigrateAsync(string[] args, CancellationToken cancellationToken)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = WorkerHost.ContentRoot });
        builder.AddWorkerLogging();
        builder.AddWorkerPersistence();
        using var host = builder.Build();
        var factory = host.Services.GetRequiredService<IDbContextFactory<WorkerDbContext>>();
        await using var db = await factory.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var pending = (await db.Database.GetPendingMigrationsAsync(cancellationToken).ConfigureAwait(false)).ToList();
        await db.Database.MigrateAsync(cancellationToken).ConfigureAwait(false);
        await Console.Out.WriteLineAsync(pending.Count == 0
            ? "Database is up to date."
            : $"Applied {pending.Count} migration(s): {string.Join(", ", pending)}").ConfigureAwait(false);
        return 0;
    }
}
