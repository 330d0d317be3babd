using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql;
using Worker.Host.Messaging;
using Worker.Host.Persistence;
using Worker.Persistence;

namespace Worker.Host.Operations;

/// <summary>
/// The <c>migrate</c> subcommand: applies pending EF Core migrations to <c>ConnectionStrings:Postgres</c>, then declares
/// the broker topology (<see cref="BrokerTopology"/>), so the Job that runs it before a rollout leaves both ready.
/// </summary>
/// <remarks>
/// Two <c>migrate</c> processes may run at once (a Job retried beside an init container, two pipelines): the whole
/// migration runs under a Postgres session-level advisory lock (<see cref="AdvisoryLockKey"/>), so the second waits
/// for the first and then finds nothing to apply. The history table is created (if missing) before anything reads
/// it, so a fresh database logs no "Failed executing DbCommand" errors.
/// </remarks>
public static class DatabaseMigrator
{
    /// <summary>
    /// Key of the Postgres advisory lock held while migrating (<c>pg_advisory_lock(bigint)</c>): any number unique to this
    /// application within the database; shown in <c>pg_locks.objid</c> as its low 32 bits.
    /// </summary>
    public const long AdvisoryLockKey = 0x676F_6E67_6D69_6772; // "gongmigr"

    /// <summary>
    /// Applies every pending migration and declares the broker topology; returns the process exit code: 0 on success, 1 with
    /// one line naming <c>ConnectionStrings:Postgres</c> when Postgres refuses or fails (no stack trace).
    /// </summary>
    /// <param name="args">Configuration arguments.</param>
    /// <param name="cancellationToken">Stops the migration.</param>
    public static async Task<int> MigrateAsync(string[] args, CancellationToken cancellationToken)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = WorkerHost.ContentRoot });
        builder.AddWorkerLogging();
        builder.AddWorkerPersistence();
        using var host = builder.Build();
        IReadOnlyList<string> applied;
        try
        {
            applied = await ApplyAsync(host.Services, cancellationToken).ConfigureAwait(false);
        }
        catch (NpgsqlException ex)
        {
            // A wrong password (28P01), an unknown host or a failed migration: one line, as status, gate and redrive print it.
            await Console.Error.WriteLineAsync($"Cannot migrate the worker database (ConnectionStrings:Postgres): {ex.Message}").ConfigureAwait(false);
            return 1;
        }

        await Console.Out.WriteLineAsync(applied.Count == 0
            ? "Database is up to date."
            : $"Applied {applied.Count} migration(s): {string.Join(", ", applied)}").ConfigureAwait(false);
        return await BrokerTopology.DeployAsync(args, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Applies the pending migrations under the advisory lock; returns the names applied (empty when none were pending).</summary>
    /// <param name="services">Services with the <see cref="NpgsqlDataSource"/> and the <see cref="WorkerDbContext"/> factory.</param>
    /// <param name="cancellationToken">Stops the wait for the lock or the migration.</param>
    internal static async Task<IReadOnlyList<string>> ApplyAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var dataSource = services.GetRequiredService<NpgsqlDataSource>();
        var factory = services.GetRequiredService<IDbContextFactory<WorkerDbContext>>();

        // A session lock on a connection of its own: held across EF's own transactions, released by the unlock below or,
        // if the process dies, by Postgres when the session ends.
        await using var lockConnection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (var acquire = new NpgsqlCommand("SELECT pg_advisory_lock(@key)", lockConnection))
        {
            acquire.Parameters.AddWithValue("key", AdvisoryLockKey);
            acquire.CommandTimeout = 0;
            await acquire.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            await using var db = await factory.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
            await db.GetService<IHistoryRepository>().CreateIfNotExistsAsync(cancellationToken).ConfigureAwait(false);
            var pending = (await db.Database.GetPendingMigrationsAsync(cancellationToken).ConfigureAwait(false)).ToList();
            if (pending.Count > 0)
            {
                await db.Database.MigrateAsync(cancellationToken).ConfigureAwait(false);
            }

            return pending;
        }
        finally
        {
            // The pooled connection keeps its session: without the unlock the lock would outlive this migration.
            // A broken connection is discarded by the pool and its session, with the lock, ends with it.
            if (lockConnection.State == System.Data.ConnectionState.Open)
            {
                await using var release = new NpgsqlCommand("SELECT pg_advisory_unlock(@key)", lockConnection);
                release.Parameters.AddWithValue("key", AdvisoryLockKey);
                await release.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
    }
}
