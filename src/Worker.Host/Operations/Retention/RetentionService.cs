using Microsoft.Extensions.Options;
using Npgsql;

namespace Worker.Host.Operations.Retention;

/// <summary>
/// Deletes terminal rows older than <see cref="RetentionOptions.MaxAge"/> in chunks of
/// <see cref="RetentionOptions.ChunkSize"/>: completed requests with their prospect rows (only once their event is
/// published), published outbox rows, Gong call records and closed dispatch batches. Runs in every replica; chunks
/// are small and idempotent, so replicas running at once only share the work.
/// </summary>
internal sealed partial class RetentionService(
    NpgsqlDataSource dataSource,
    IOptions<RetentionOptions> options,
    TimeProvider timeProvider,
    ILogger<RetentionService> logger) : BackgroundService
{
    // Each statement deletes at most @chunk rows and is repeated until it deletes none.
    private static readonly (string Table, string Sql)[] Steps =
    [
        ("prospect_assignments", """
            DELETE FROM prospect_assignments WHERE id IN (
                SELECT p.id FROM assignment_requests r
                JOIN prospect_assignments p ON p.assignment_request_id = r.id
                WHERE r.status IS NOT NULL AND r.completed_at < @cutoff
                  AND NOT EXISTS (SELECT 1 FROM outbox_messages o WHERE o.assignment_request_id = r.id AND o.published_at IS NULL)
                LIMIT @chunk)
            """),
        ("assignment_requests", """
            DELETE FROM assignment_requests WHERE id IN (
                SELECT r.id FROM assignment_requests r
                WHERE r.status IS NOT NULL AND r.completed_at < @cutoff
                  AND NOT EXISTS (SELECT 1 FROM outbox_messages o WHERE o.assignment_request_id = r.id AND o.published_at IS NULL)
                  AND NOT EXISTS (SELECT 1 FROM prospect_assignments p WHERE p.assignment_request_id = r.id)
                LIMIT @chunk)
            """),
        ("outbox_messages", """
            DELETE FROM outbox_messages WHERE id IN (
                SELECT id FROM outbox_messages WHERE published_at IS NOT NULL AND published_at < @cutoff LIMIT @chunk)
            """),
        ("gong_calls", """
            DELETE FROM gong_calls WHERE id IN (SELECT id FROM gong_calls WHERE started_at < @cutoff LIMIT @chunk)
            """),
        ("dispatch_batches", """
            DELETE FROM dispatch_batches WHERE id IN (
                SELECT id FROM dispatch_batches WHERE completed_at IS NOT NULL AND completed_at < @cutoff LIMIT @chunk)
            """),
    ];

    private readonly RetentionOptions settings = options.Value;

    /// <summary>Runs one retention pass; returns rows deleted per table.</summary>
    internal async Task<IReadOnlyDictionary<string, long>> RunOnceAsync(CancellationToken cancellationToken)
    {
        var cutoff = timeProvider.GetUtcNow() - settings.MaxAge;
        var deleted = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (table, sql) in Steps)
        {
            long total = 0;
            int rows;
            do
            {
                await using var command = dataSource.CreateCommand(sql);
                command.Parameters.AddWithValue("cutoff", cutoff);
                command.Parameters.AddWithValue("chunk", settings.ChunkSize);
                rows = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                total += rows;
            }
            while (rows > 0);

            deleted[table] = total;
            if (total > 0)
            {
                LogDeleted(total, table, cutoff);
            }
        }

        return deleted;
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(settings.Interval, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await RunOnceAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
                {
                    LogFailed(ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutdown.
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Retention deleted {Rows} rows from {Table} older than {Cutoff}")]
    private partial void LogDeleted(long rows, string table, DateTimeOffset cutoff);

    [LoggerMessage(Level = LogLevel.Error, Message = "Retention pass failed; it runs again at the next interval")]
    private partial void LogFailed(Exception exception);
}
