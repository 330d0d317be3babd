using System.Reflection;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Worker.Persistence;

namespace Worker.Host.Operations;

/// <summary>
/// Readiness check <c>migrations</c>: Unhealthy while the database lacks a migration this version ships (the
/// <c>migrate</c> Job has not run yet), naming them; Healthy once none is pending. Migrations are never taken back, so
/// after the first Healthy answer the database is not asked again. Database errors are left to the <c>postgres</c> check
/// (this one then reports Unhealthy with the exception).
/// </summary>
internal sealed class PendingMigrationsHealthCheck(NpgsqlDataSource dataSource) : IHealthCheck
{
    /// <summary>Migration ids this version ships, oldest first: read once from the persistence assembly's <see cref="MigrationAttribute"/>s.</summary>
    private static readonly Lazy<string[]> Shipped = new(() => [.. typeof(WorkerDbContext).Assembly.GetTypes()
        .Select(t => t.GetCustomAttribute<MigrationAttribute>()?.Id)
        .OfType<string>()
        .Order(StringComparer.Ordinal)]);

    private volatile bool upToDate;

    /// <summary>Migrations of this version not in the database's history, oldest first (empty when up to date).</summary>
    /// <remarks>
    /// Plain SQL on the data source, no DbContext: a readiness probe must stay cheap (building EF's model under CPU
    /// pressure can take seconds), and looking the history table up in the catalog first keeps a fresh database from
    /// logging a failed SELECT.
    /// </remarks>
    /// <exception cref="NpgsqlException">The database cannot be read.</exception>
    public async Task<IReadOnlyList<string>> PendingAsync(CancellationToken cancellationToken)
    {
        if (upToDate)
        {
            return [];
        }

        var applied = new HashSet<string>(StringComparer.Ordinal);
        await using (var exists = dataSource.CreateCommand($"SELECT to_regclass('\"{HistoryRepository.DefaultTableName}\"') IS NOT NULL"))
        {
            if ((bool)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
            {
                await using var read = dataSource.CreateCommand($"SELECT migration_id FROM \"{HistoryRepository.DefaultTableName}\"");
                await using var reader = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    applied.Add(reader.GetString(0));
                }
            }
        }

        var pending = Shipped.Value.Where(m => !applied.Contains(m)).ToList();
        upToDate = pending.Count == 0;
        return pending;
    }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var pending = await PendingAsync(cancellationToken).ConfigureAwait(false);
        return pending.Count == 0
            ? HealthCheckResult.Healthy("Database schema is up to date.")
            : HealthCheckResult.Unhealthy(Describe(pending));
    }

    /// <summary>The operator's message for pending migrations (what is missing and what to run).</summary>
    internal static string Describe(IReadOnlyList<string> pending) =>
        $"{pending.Count} database migration(s) pending ({string.Join(", ", pending)}): run `Worker.Host.dll migrate` (the migration Job) before this version; not ready until then.";
}

/// <summary>
/// Says at start, in the log, when the database schema is behind this version (see <see cref="PendingMigrationsHealthCheck"/>):
/// one error line naming the pending migrations and the command to run. Runs in the background so a database outage
/// does not delay start; an unreachable database is the <c>postgres</c> check's business.
/// </summary>
internal sealed partial class PendingMigrationsNotice(PendingMigrationsHealthCheck check, ILogger<PendingMigrationsNotice> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            var pending = await check.PendingAsync(stoppingToken).ConfigureAwait(false);
            if (pending.Count > 0)
            {
                LogPending(logger, PendingMigrationsHealthCheck.Describe(pending));
            }
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException or InvalidOperationException)
        {
            LogUnknown(logger, ex.Message);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopped before the database answered.
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Database schema is behind this version: {Description}")]
    private static partial void LogPending(ILogger logger, string description);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not check for pending database migrations at start: {Reason}")]
    private static partial void LogUnknown(ILogger logger, string reason);
}
