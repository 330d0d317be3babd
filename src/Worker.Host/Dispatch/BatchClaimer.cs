using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

/// <summary>
/// Claims a batch of one group: up to MaxBatchSize unique CRM ids (every pending row of each id) taken from Pending to
/// InFlight under a new lease held by this replica (<see cref="ProspectStateMachine"/>).
/// </summary>
/// <remarks>
/// Claims of one group are serialised by a transaction-scoped advisory lock on the group, so two replicas never put the
/// same CRM id (pending in two requests of the group) into two batches; rows are still taken with SKIP LOCKED so a claim
/// never waits on a row another transaction holds. Every timestamp comes from the injected <see cref="TimeProvider"/>.
/// </remarks>
internal sealed class BatchClaimer(NpgsqlDataSource dataSource, IOptions<DispatchOptions> options, ProspectStateMachine stateMachine, TimeProvider timeProvider)
{
    private const int PageSize = 500;

    // Rows whose CRM id is already in flight in this group wait: the answer for that id is on its way. So do rows whose
    // id has an outcome-unknown call still settling (reconcile_first, not yet available): neither a lookup nor an assign
    // of that id may go out before the unknown call can no longer commit.
    private const string PageSql = $"""
        SELECT p.id, p.crm_prospect_id, p.reconcile_first, p.available_at, p.attempts
        FROM prospect_assignments p
        WHERE p.status = {StatusSql.Pending} AND p.flow_id = @flow AND p.owner_email = @owner AND p.priority = @priority
          AND p.available_at <= @now AND (p.available_at, p.id) > (@after_at, @after_id)
          AND NOT EXISTS (
              SELECT 1 FROM prospect_assignments q
              WHERE q.crm_prospect_id = p.crm_prospect_id
                AND (q.status = {StatusSql.InFlight} OR (q.status = {StatusSql.Pending} AND q.reconcile_first AND q.available_at > @now))
                AND q.flow_id = p.flow_id AND q.owner_email = p.owner_email)
        ORDER BY p.available_at, p.id
        LIMIT @limit
        FOR UPDATE OF p SKIP LOCKED
        """;

    // The same id pending in other requests of the group (possibly not yet available) rides along: sent once.
    private const string DuplicatesSql = $"""
        SELECT p.id, p.crm_prospect_id, p.reconcile_first, p.attempts
        FROM prospect_assignments p
        WHERE p.status = {StatusSql.Pending} AND p.flow_id = @flow AND p.owner_email = @owner
          AND p.crm_prospect_id = ANY(@ids) AND NOT (p.id = ANY(@taken))
        FOR UPDATE SKIP LOCKED
        """;

    private const string MarkInFlightSql = $"""
        UPDATE prospect_assignments SET status = {StatusSql.InFlight}, batch_id = @batch, updated_at = @now WHERE id = ANY(@rows);
        INSERT INTO dispatch_batches (id, flow_id, owner_email, prospect_count, claimed_by, claimed_at, lease_expires_at, reclaimed, priority)
        VALUES (@batch, @flow, @owner, @count, @replica, @now, @lease, false, @priority);
        """;

    private readonly DispatchOptions settings = options.Value;

    /// <summary>Claims a batch of one group, high-priority rows first (<see cref="PriorityLanes.HighFirst"/>).</summary>
    public Task<AssignmentBatch?> ClaimAsync(string flowId, string ownerEmail, CancellationToken cancellationToken) =>
        ClaimAsync(flowId, ownerEmail, PriorityLanes.HighFirst, cancellationToken);

    /// <summary>
    /// Claims up to MaxBatchSize unique CRM ids of one group (every pending row of each id) into a new batch under a
    /// lease held by this replica, taking the group's rows lane by lane in <paramref name="lanes"/> order (each oldest
    /// first). Returns null when nothing of the group can be claimed now.
    /// </summary>
    public async Task<AssignmentBatch?> ClaimAsync(string flowId, string ownerEmail, IReadOnlyList<ProspectPriority> lanes, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

        await using (var lockGroup = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended(@flow || '|' || @owner, 7))", connection, transaction))
        {
            lockGroup.Parameters.AddWithValue("flow", flowId);
            lockGroup.Parameters.AddWithValue("owner", ownerEmail);
            await lockGroup.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        var ids = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var reconcile = new HashSet<string>(StringComparer.Ordinal);
        var exhausted = (Exhausted: new HashSet<string>(StringComparer.Ordinal), Abandoned: new HashSet<string>(StringComparer.Ordinal));
        var rows = new List<long>();
        DateTimeOffset? oldest = null;
        var batchLane = new ClaimedLanes();
        foreach (var lane in lanes)
        {
            var afterAt = DateTimeOffset.UnixEpoch;
            var afterId = long.MinValue;
            while (ids.Count < settings.MaxBatchSize)
            {
                var read = 0;
                await using var page = new NpgsqlCommand(PageSql, connection, transaction);
                page.Parameters.AddWithValue("flow", flowId);
                page.Parameters.AddWithValue("owner", ownerEmail);
                page.Parameters.AddWithValue("now", now);
                page.Parameters.AddWithValue("after_at", afterAt);
                page.Parameters.AddWithValue("after_id", afterId);
                page.Parameters.AddWithValue("limit", PageSize);
                page.Parameters.AddWithValue("priority", lane.ToString());
                await using (var reader = await page.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        read++;
                        var rowId = reader.GetInt64(0);
                        var crmId = reader.GetString(1);
                        afterId = rowId;
                        afterAt = reader.GetFieldValue<DateTimeOffset>(3);
                        oldest = oldest is { } o && o <= afterAt ? o : afterAt;
                        batchLane.Read(lane, afterAt);
                        if (seen.Contains(crmId))
                        {
                            rows.Add(rowId);
                            MarkReconcile(reader.GetBoolean(2), crmId, reconcile);
                            MarkExhausted(reader.GetInt32(4), crmId, exhausted);
                        }
                        else if (ids.Count < settings.MaxBatchSize)
                        {
                            seen.Add(crmId);
                            ids.Add(crmId);
                            rows.Add(rowId);
                            MarkReconcile(reader.GetBoolean(2), crmId, reconcile);
                            MarkExhausted(reader.GetInt32(4), crmId, exhausted);
                        }
                    }
                }

                if (read < PageSize)
                {
                    break;
                }
            }
        }

        // A group ready by size yields full batches only; what is left waits for its own MaxBatchDelay (a high row's:
        // HighPriorityMaxBatchDelay).
        if (ids.Count == 0 || (ids.Count < settings.MaxBatchSize && oldest + settings.MaxBatchDelay > now
                               && !(batchLane.OldestHigh + settings.HighPriorityMaxBatchDelay <= now)))
        {
            await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
            return null;
        }

        await using (var duplicates = new NpgsqlCommand(DuplicatesSql, connection, transaction))
        {
            duplicates.Parameters.AddWithValue("flow", flowId);
            duplicates.Parameters.AddWithValue("owner", ownerEmail);
            duplicates.Parameters.AddWithValue("ids", ids.ToArray());
            duplicates.Parameters.AddWithValue("taken", rows.ToArray());
            await using var reader = await duplicates.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                rows.Add(reader.GetInt64(0));
                MarkReconcile(reader.GetBoolean(2), reader.GetString(1), reconcile);
                MarkExhausted(reader.GetInt32(3), reader.GetString(1), exhausted);
            }
        }

        var batchId = Guid.CreateVersion7(now);
        await using (var mark = new NpgsqlCommand(MarkInFlightSql, connection, transaction))
        {
            mark.Parameters.AddWithValue("batch", batchId);
            mark.Parameters.AddWithValue("rows", rows.ToArray());
            mark.Parameters.AddWithValue("now", now);
            mark.Parameters.AddWithValue("flow", flowId);
            mark.Parameters.AddWithValue("owner", ownerEmail);
            mark.Parameters.AddWithValue("count", ids.Count);
            mark.Parameters.AddWithValue("replica", settings.ReplicaName);
            mark.Parameters.AddWithValue("lease", now + settings.LeaseDuration);
            mark.Parameters.AddWithValue("priority", batchLane.Best.ToString());
            await mark.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        // Not the stopping token: a stop during COMMIT would leave the rows InFlight (committed or not, unknown to us)
        // until the lease expires. Once committed, the batch runs and is released or recorded like any other.
        await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        return new AssignmentBatch(batchId, flowId, ownerEmail, ids, reconcile)
        {
            Exhausted = exhausted.Exhausted,
            Abandoned = exhausted.Abandoned,
            Priority = batchLane.Best,
        };
    }

    private void MarkExhausted(int attempts, string crmId, (HashSet<string> Exhausted, HashSet<string> Abandoned) sets)
    {
        if (stateMachine.IsExhausted(attempts))
        {
            sets.Exhausted.Add(crmId);
        }

        if (stateMachine.IsAbandoned(attempts))
        {
            sets.Abandoned.Add(crmId);
        }
    }

    private static void MarkReconcile(bool reconcileFirst, string crmId, HashSet<string> reconcile)
    {
        if (reconcileFirst)
        {
            reconcile.Add(crmId);
        }
    }
}
