using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Gong;

namespace Worker.Host.Dispatch;

/// <summary>
/// The leases of claimed batches (<c>dispatch_batches.lease_expires_at</c>): the holder renews its own; any replica
/// reclaims expired ones, whose prospects go back to Pending as outcome unknown (<see cref="ProspectStateMachine"/>).
/// Every timestamp comes from the injected <see cref="TimeProvider"/>.
/// </summary>
internal sealed class BatchLeases(NpgsqlDataSource dataSource, IOptions<DispatchOptions> options, IOptions<GongOptions> gongOptions, TimeProvider timeProvider)
{
    /// <summary>Error code a reclaimed prospect carries until its next answer (kept if it ends RetriesExhausted).</summary>
    public const string LeaseExpired = "LeaseExpired";

    // An expired lease: the holder died or lost the database. Its call may have reached Gong, so every prospect goes
    // back to Pending marked reconcile-first, waits until that call can no longer commit (@settle_at), and the unknown
    // outcome uses one attempt (a batch that kills its replica every time ends as RetriesExhausted, not in a loop).
    private const string ReclaimSql = $"""
        WITH expired AS (
            SELECT id FROM dispatch_batches
            WHERE completed_at IS NULL AND lease_expires_at < @now AND NOT (id = ANY(@running))
            ORDER BY lease_expires_at LIMIT 100
            FOR UPDATE SKIP LOCKED
        ), closed AS (
            UPDATE dispatch_batches b SET completed_at = @now, reclaimed = true
            FROM expired e WHERE b.id = e.id RETURNING b.id
        )
        UPDATE prospect_assignments p
        SET status = {StatusSql.Pending}, reconcile_first = true, attempts = p.attempts + 1, updated_at = @now,
            available_at = GREATEST(p.available_at, @settle_at),
            error_code = '{LeaseExpired}',
            error_message = 'the replica holding its batch stopped renewing the lease (killed, frozen or cut off from Postgres) while a call may have been in flight'
        FROM closed c WHERE p.batch_id = c.id AND p.status = {StatusSql.InFlight}
        RETURNING p.batch_id
        """;

    private readonly DispatchOptions settings = options.Value;
    private readonly TimeSpan outcomeSettleTime = gongOptions.Value.OutcomeSettleTime;

    /// <summary>Extends the lease of a batch this replica still holds; false when the batch was reclaimed or closed.</summary>
    public async Task<bool> RenewLeaseAsync(Guid batchId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "UPDATE dispatch_batches SET lease_expires_at = @lease WHERE id = @batch AND completed_at IS NULL");
        command.Parameters.AddWithValue("batch", batchId);
        command.Parameters.AddWithValue("lease", timeProvider.GetUtcNow() + settings.LeaseDuration);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <summary>
    /// Closes batches whose lease expired (other than <paramref name="running"/>) and returns their prospects to Pending
    /// as reconcile-first. Returns the number of prospect rows released.
    /// </summary>
    public async Task<int> ReclaimExpiredAsync(IReadOnlyCollection<Guid> running, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ReclaimSql);
        var now = timeProvider.GetUtcNow();
        command.Parameters.AddWithValue("now", now);
        command.Parameters.AddWithValue("settle_at", now + outcomeSettleTime);
        command.Parameters.AddWithValue("running", running.ToArray());
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
