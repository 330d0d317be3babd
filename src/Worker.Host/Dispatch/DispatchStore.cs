using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Contracts;
using Worker.Host.Gong;
using Worker.Host.Relay;
using Worker.Persistence;
using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

/// <summary>A (flow, lower-cased owner) group with pending prospects, as the dispatcher sees it on one look.</summary>
/// <param name="FlowId">Gong flow id.</param>
/// <param name="OwnerEmail">Owner email, lower-cased.</param>
/// <param name="Oldest">Smallest available_at of its pending rows (UTC).</param>
/// <param name="Eligible">
/// Pending rows available now, counted up to MaxBatchSize; null when the group is already due (its oldest pending row
/// waited MaxBatchDelay, so at least one is available), where the count decides nothing and is not taken.
/// </param>
/// <param name="LastServed">When a batch of this group was last claimed (UTC), by any replica; null if never.</param>
internal sealed record PendingGroup(string FlowId, string OwnerEmail, DateTimeOffset Oldest, int? Eligible, DateTimeOffset? LastServed)
{
    /// <summary>Smallest available_at of the group's pending rows per lane (UTC); null when the lane has none.</summary>
    public LaneOldest Lanes { get; init; } = new(null, Oldest, null);
}

/// <summary>What a batch's results changed, for metrics and logs.</summary>
/// <param name="LeaseLost">The batch had been reclaimed by another replica: nothing but the calls was written.</param>
/// <param name="Outcomes">Final outcomes recorded, by prospect status name and error code (one per row).</param>
/// <param name="CompletedRequests">Requests that became complete (their events are in the outbox).</param>
internal sealed record RecordedBatch(bool LeaseLost, IReadOnlyDictionary<(string Status, string? ErrorCode), int> Outcomes, int CompletedRequests)
{
    /// <summary>The batch had already been recorded by an earlier write of the same results (its COMMIT succeeded but the
    /// answer was lost): nothing was written again.</summary>
    public bool AlreadyRecorded { get; init; }

    /// <summary>Final outcomes recorded per priority lane (throughput per priority).</summary>
    public IReadOnlyDictionary<ProspectPriority, int> CompletedByPriority { get; init; } = new Dictionary<ProspectPriority, int>();
}

/// <summary>
/// The dispatcher's SQL: finding ready groups, claiming batches (advisory lock per group + <c>FOR UPDATE SKIP LOCKED</c>),
/// leases, reclaiming and releasing, and the one transaction that records a batch's results.
/// </summary>
/// <remarks>
/// Claims of one group are serialised by a transaction-scoped advisory lock on the group, so two replicas never put the
/// same CRM id (pending in two requests of the group) into two batches; rows are still taken with SKIP LOCKED so a claim
/// never waits on a row another transaction holds. Every timestamp comes from the injected <see cref="TimeProvider"/>.
/// </remarks>
internal sealed class DispatchStore(
    NpgsqlDataSource dataSource,
    IDbContextFactory<WorkerDbContext> contextFactory,
    IOptions<DispatchOptions> options,
    IOptions<GongOptions> gongOptions,
    TimeProvider timeProvider)
{
    private const int PageSize = 500;

    // One index probe per group on ix_prospect_assignments_pending_by_group (flow, owner, available_at, id): the skip
    // scan's first entry of a group is its oldest pending row. Rows are counted (up to MaxBatchSize) only for groups not
    // yet due by MaxBatchDelay, the only ones readiness-by-size decides; counting every group made one look visit every
    // pending index entry (1.7 s with 1,000,000 pending in 5,000 groups; see README "Benchmarks").
    private static readonly string GroupsSql = $"""
        WITH RECURSIVE g AS (
            (SELECT flow_id, owner_email, available_at FROM prospect_assignments
             WHERE status = 'Pending' ORDER BY flow_id, owner_email, available_at LIMIT 1)
            UNION ALL
            SELECT n.flow_id, n.owner_email, n.available_at FROM g CROSS JOIN LATERAL (
                SELECT p.flow_id, p.owner_email, p.available_at FROM prospect_assignments p
                WHERE p.status = 'Pending' AND (p.flow_id, p.owner_email) > (g.flow_id, g.owner_email)
                ORDER BY p.flow_id, p.owner_email, p.available_at LIMIT 1) n
        )
        SELECT g.flow_id, g.owner_email, g.available_at AS oldest,
            CASE WHEN g.available_at <= @due THEN NULL ELSE (
                SELECT count(*)::int FROM (
                    SELECT 1 FROM prospect_assignments p
                    WHERE p.status = 'Pending' AND p.flow_id = g.flow_id AND p.owner_email = g.owner_email
                      AND p.available_at <= @now
                    LIMIT @max) x) END AS eligible,
            (SELECT b.claimed_at FROM dispatch_batches b
             WHERE b.flow_id = g.flow_id AND b.owner_email = g.owner_email
             ORDER BY b.claimed_at DESC LIMIT 1) AS last_served,
            {PriorityLaneSql.OldestPerLane}
        FROM g
        """;

    // Rows whose CRM id is already in flight in this group wait: the answer for that id is on its way. So do rows whose
    // id has an outcome-unknown call still settling (reconcile_first, not yet available): neither a lookup nor an assign
    // of that id may go out before the unknown call can no longer commit.
    private const string PageSql = """
        SELECT p.id, p.crm_prospect_id, p.reconcile_first, p.available_at, p.attempts
        FROM prospect_assignments p
        WHERE p.status = 'Pending' AND p.flow_id = @flow AND p.owner_email = @owner AND p.priority = @priority
          AND p.available_at <= @now AND (p.available_at, p.id) > (@after_at, @after_id)
          AND NOT EXISTS (
              SELECT 1 FROM prospect_assignments q
              WHERE q.crm_prospect_id = p.crm_prospect_id
                AND (q.status = 'InFlight' OR (q.status = 'Pending' AND q.reconcile_first AND q.available_at > @now))
                AND q.flow_id = p.flow_id AND q.owner_email = p.owner_email)
        ORDER BY p.available_at, p.id
        LIMIT @limit
        FOR UPDATE OF p SKIP LOCKED
        """;

    // The same id pending in other requests of the group (possibly not yet available) rides along: sent once.
    private const string DuplicatesSql = """
        SELECT p.id, p.crm_prospect_id, p.reconcile_first, p.attempts
        FROM prospect_assignments p
        WHERE p.status = 'Pending' AND p.flow_id = @flow AND p.owner_email = @owner
          AND p.crm_prospect_id = ANY(@ids) AND NOT (p.id = ANY(@taken))
        FOR UPDATE SKIP LOCKED
        """;

    private const string MarkInFlightSql = """
        UPDATE prospect_assignments SET status = 'InFlight', batch_id = @batch, updated_at = @now WHERE id = ANY(@rows);
        INSERT INTO dispatch_batches (id, flow_id, owner_email, prospect_count, claimed_by, claimed_at, lease_expires_at, reclaimed, priority)
        VALUES (@batch, @flow, @owner, @count, @replica, @now, @lease, false, @priority);
        """;

    // An expired lease: the holder died or lost the database. Its call may have reached Gong, so every prospect goes
    // back to Pending marked reconcile-first, waits until that call can no longer commit (@settle_at), and the unknown
    // outcome uses one attempt (a batch that kills its replica every time ends as RetriesExhausted, not in a loop).
    private const string ReclaimSql = """
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
        SET status = 'Pending', reconcile_first = true, attempts = p.attempts + 1, updated_at = @now,
            available_at = GREATEST(p.available_at, @settle_at),
            error_code = 'LeaseExpired',
            error_message = 'the replica holding its batch stopped renewing the lease (killed, frozen or cut off from Postgres) while a call may have been in flight'
        FROM closed c WHERE p.batch_id = c.id AND p.status = 'InFlight'
        RETURNING p.batch_id
        """;

    private const string InsertCallSql = """
        INSERT INTO gong_calls (batch_id, call_id, endpoint, flow_id, owner_email, prospect_count, http_status, gong_request_id,
            outcome_class, error, retry_after_seconds, started_at, duration_ms, replica)
        VALUES (@batch, @call, @endpoint, @flow, @owner, @count, @status, @request, @class, @error, @retry_after, @started, @duration, @replica)
        ON CONFLICT (batch_id, call_id) DO NOTHING
        """;

    private const string CompleteRequestsSql = """
        SELECT id FROM assignment_requests WHERE id = ANY(@ids) ORDER BY id FOR UPDATE;
        UPDATE assignment_requests r SET
            pending_count = r.pending_count - v.done,
            assigned_count = r.assigned_count + v.assigned,
            not_assigned_count = r.not_assigned_count + v.not_assigned,
            failed_count = r.failed_count + v.failed,
            status = CASE WHEN r.pending_count - v.done > 0 THEN r.status
                WHEN r.assigned_count + v.assigned > 0
                     AND r.not_assigned_count + v.not_assigned + r.failed_count + v.failed + r.rejected_count = 0 THEN 'Succeeded'
                WHEN r.assigned_count + v.assigned > 0 THEN 'PartiallySucceeded'
                ELSE 'Failed' END,
            completed_at = CASE WHEN r.pending_count - v.done > 0 THEN r.completed_at ELSE @now END
        FROM unnest(@ids, @done, @assigned, @not_assigned, @failed) AS v(id, done, assigned, not_assigned, failed)
        WHERE r.id = v.id AND r.status IS NULL
        RETURNING r.id, r.pending_count;
        """;

    private readonly DispatchOptions settings = options.Value;
    private readonly TimeSpan outcomeSettleTime = gongOptions.Value.OutcomeSettleTime;

    /// <summary>Every group with pending prospects, with what readiness and fairness need.</summary>
    public async Task<IReadOnlyList<PendingGroup>> GetPendingGroupsAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(GroupsSql);
        var now = timeProvider.GetUtcNow();
        command.Parameters.AddWithValue("now", now);
        command.Parameters.AddWithValue("due", now - settings.MaxBatchDelay);
        command.Parameters.AddWithValue("max", settings.MaxBatchSize);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var groups = new List<PendingGroup>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            groups.Add(new PendingGroup(
                reader.GetString(0),
                reader.GetString(1),
                reader.GetFieldValue<DateTimeOffset>(2),
                reader.IsDBNull(3) ? null : reader.GetInt32(3),
                reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4)) { Lanes = PriorityLaneSql.ReadOldestPerLane(reader, 5) });
        }

        return groups;
    }

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

    /// <summary>
    /// Builds the EF Core model and compiles the queries <see cref="RecordAsync"/> runs, reading nothing: in a fresh
    /// process the first write of a batch's results otherwise pays that (seconds on a busy machine), which at shutdown
    /// is taken from the few seconds left to record a cancelled call.
    /// </summary>
    public async Task WarmUpAsync(CancellationToken cancellationToken)
    {
        await using var db = await contextFactory.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        var none = Guid.Empty;
        _ = await db.ProspectAssignments
            .Where(p => p.BatchId == none && p.Status == ProspectAssignmentStatus.InFlight)
            .ToListAsync(cancellationToken).ConfigureAwait(false);
        List<long> completed = [];
        _ = await db.AssignmentRequests.AsNoTracking()
            .Where(r => completed.Contains(r.Id))
            .Include(r => r.Prospects.OrderBy(p => p.Id))
            .AsSplitQuery()
            .ToListAsync(cancellationToken).ConfigureAwait(false);
    }

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

    /// <summary>
    /// Writes one answered batch in one transaction: every prospect row of the batch, the <c>gong_calls</c> rows,
    /// the request counters and statuses, and a <see cref="FlowAssignmentCompleted"/> outbox row per request that
    /// became complete. When the batch was reclaimed meanwhile only the calls are written (the reclaimer reconciles).
    /// </summary>
    public async Task<RecordedBatch> RecordAsync(AssignmentBatch batch, BatchResult result, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        await using var db = await contextFactory.CreateDbContextAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var connection = (NpgsqlConnection)db.Database.GetDbConnection();
        var npgsqlTransaction = (NpgsqlTransaction)transaction.GetDbTransaction();

        await InsertCallsAsync(connection, npgsqlTransaction, batch, result.Calls, cancellationToken).ConfigureAwait(false);

        await using (var close = new NpgsqlCommand(
                         "UPDATE dispatch_batches SET completed_at = @now WHERE id = @batch AND completed_at IS NULL", connection, npgsqlTransaction))
        {
            close.Parameters.AddWithValue("now", now);
            close.Parameters.AddWithValue("batch", batch.BatchId);
            if (await close.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                // Closed already: by a reclaim (the lease expired), or by our own earlier write whose COMMIT succeeded
                // though its answer was lost (a retried write must then change nothing, nor claim a reclaim).
                await using var closedBy = new NpgsqlCommand("SELECT reclaimed FROM dispatch_batches WHERE id = @batch", connection, npgsqlTransaction);
                closedBy.Parameters.AddWithValue("batch", batch.BatchId);
                var reclaimed = await closedBy.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true;
                await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
                return new RecordedBatch(reclaimed, new Dictionary<(string Status, string? ErrorCode), int>(), 0) { AlreadyRecorded = !reclaimed };
            }
        }

        var byId = new Dictionary<string, ProspectResult>(StringComparer.Ordinal);
        foreach (var prospect in result.Prospects)
        {
            byId.TryAdd(prospect.CrmProspectId, prospect);
        }

        var rows = await db.ProspectAssignments
            .Where(p => p.BatchId == batch.BatchId && p.Status == ProspectAssignmentStatus.InFlight)
            .ToListAsync(cancellationToken).ConfigureAwait(false);
        var outcomes = new Dictionary<(string Status, string? ErrorCode), int>();
        var completedByPriority = new Dictionary<ProspectPriority, int>();
        var deltas = new SortedDictionary<long, RequestDelta>();
        foreach (var row in rows)
        {
            var answer = byId.GetValueOrDefault(row.CrmProspectId)
                ?? new ProspectResult(row.CrmProspectId, ProspectResultKind.RetryLater, ErrorCode: "MissingResult",
                    ErrorMessage: "The Gong client returned no result for this prospect; its call may have been processed.", ReconcileFirst: true);
            Apply(row, answer, now);
            if (row.Status is ProspectAssignmentStatus.Pending)
            {
                continue;
            }

            var key = (row.Status.ToString(), row.ErrorCode);
            outcomes[key] = outcomes.GetValueOrDefault(key) + 1;
            completedByPriority[row.Priority] = completedByPriority.GetValueOrDefault(row.Priority) + 1;
            var delta = deltas.GetValueOrDefault(row.AssignmentRequestId);
            deltas[row.AssignmentRequestId] = delta with
            {
                Done = delta.Done + 1,
                Assigned = delta.Assigned + (row.Status == ProspectAssignmentStatus.Assigned ? 1 : 0),
                NotAssigned = delta.NotAssigned + (row.Status == ProspectAssignmentStatus.NotAssigned ? 1 : 0),
                Failed = delta.Failed + (row.Status == ProspectAssignmentStatus.Failed ? 1 : 0),
            };
        }

        await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);

        var completed = new List<long>();
        if (deltas.Count > 0)
        {
            await using var update = new NpgsqlCommand(CompleteRequestsSql, connection, npgsqlTransaction);
            update.Parameters.AddWithValue("ids", deltas.Keys.ToArray());
            update.Parameters.AddWithValue("done", deltas.Values.Select(d => d.Done).ToArray());
            update.Parameters.AddWithValue("assigned", deltas.Values.Select(d => d.Assigned).ToArray());
            update.Parameters.AddWithValue("not_assigned", deltas.Values.Select(d => d.NotAssigned).ToArray());
            update.Parameters.AddWithValue("failed", deltas.Values.Select(d => d.Failed).ToArray());
            update.Parameters.AddWithValue("now", now);
            await using var reader = await update.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (reader.GetInt32(1) <= 0)
                {
                    completed.Add(reader.GetInt64(0));
                }
            }
        }

        if (completed.Count > 0)
        {
            var requests = await db.AssignmentRequests.AsNoTracking()
                .Where(r => completed.Contains(r.Id))
                .Include(r => r.Prospects.OrderBy(p => p.Id))
                .AsSplitQuery()
                .ToListAsync(cancellationToken).ConfigureAwait(false);
            foreach (var request in requests)
            {
                db.OutboxMessages.Add(OutboxEvents.ForCompleted(ToEvent(request), request.Id, now));
            }
        }

        await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        return new RecordedBatch(false, outcomes, completed.Count) { CompletedByPriority = completedByPriority };
    }

    /// <summary>One row per call, keyed by (batch, call id): a second write of the same results inserts nothing.</summary>
    private async Task InsertCallsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, AssignmentBatch batch, IReadOnlyList<GongCall> calls, CancellationToken cancellationToken)
    {
        if (calls.Count == 0)
        {
            return;
        }

        await using var insert = new NpgsqlBatch(connection, transaction);
        foreach (var call in calls)
        {
            call.BatchId ??= batch.BatchId;
            call.CallId ??= Guid.CreateVersion7(call.StartedAt);
            call.Replica ??= settings.ReplicaName;
            var command = new NpgsqlBatchCommand(InsertCallSql);
            command.Parameters.Add(new NpgsqlParameter("batch", NpgsqlDbType.Uuid) { Value = call.BatchId });
            command.Parameters.Add(new NpgsqlParameter("call", NpgsqlDbType.Uuid) { Value = call.CallId });
            command.Parameters.Add(new NpgsqlParameter("endpoint", NpgsqlDbType.Varchar) { Value = call.Endpoint });
            command.Parameters.Add(new NpgsqlParameter("flow", NpgsqlDbType.Varchar) { Value = call.FlowId });
            command.Parameters.Add(new NpgsqlParameter("owner", NpgsqlDbType.Varchar) { Value = call.OwnerEmail });
            command.Parameters.Add(new NpgsqlParameter("count", NpgsqlDbType.Integer) { Value = call.ProspectCount });
            command.Parameters.Add(new NpgsqlParameter("status", NpgsqlDbType.Integer) { Value = (object?)call.HttpStatus ?? DBNull.Value });
            command.Parameters.Add(new NpgsqlParameter("request", NpgsqlDbType.Text) { Value = (object?)call.GongRequestId ?? DBNull.Value });
            command.Parameters.Add(new NpgsqlParameter("class", NpgsqlDbType.Varchar) { Value = call.OutcomeClass.ToString() });
            command.Parameters.Add(new NpgsqlParameter("error", NpgsqlDbType.Text) { Value = (object?)call.Error ?? DBNull.Value });
            command.Parameters.Add(new NpgsqlParameter("retry_after", NpgsqlDbType.Double) { Value = (object?)call.RetryAfterSeconds ?? DBNull.Value });
            command.Parameters.Add(new NpgsqlParameter("started", NpgsqlDbType.TimestampTz) { Value = call.StartedAt.ToUniversalTime() });
            command.Parameters.Add(new NpgsqlParameter("duration", NpgsqlDbType.Double) { Value = call.DurationMs });
            command.Parameters.Add(new NpgsqlParameter("replica", NpgsqlDbType.Text) { Value = (object?)call.Replica ?? DBNull.Value });
            insert.BatchCommands.Add(command);
        }

        await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Builds the event of a complete request from its stored rows.</summary>
    internal static FlowAssignmentCompleted ToEvent(AssignmentRequest request) => new(
        request.RequestId,
        request.FlowId,
        request.OwnerEmail,
        request.Status ?? RequestStatus.Failed,
        request.ReceivedAt,
        request.CompletedAt ?? request.ReceivedAt,
        [.. request.Prospects.Select(p => new ProspectOutcome(
            p.CrmProspectId,
            ToProspectStatus(p.Status),
            p.FlowInstanceId,
            p.FlowInstanceStatus,
            p.ErrorCode,
            p.ErrorMessage,
            p.GongRequestId))],
        string.IsNullOrEmpty(request.RejectionReason) ? [] : request.RejectionReason.Split('\n', StringSplitOptions.RemoveEmptyEntries))
    {
        Priority = PriorityLanes.ToWire(request.Priority),
    };

    private static ProspectStatus ToProspectStatus(ProspectAssignmentStatus status) => status switch
    {
        ProspectAssignmentStatus.Assigned => ProspectStatus.Assigned,
        ProspectAssignmentStatus.NotAssigned => ProspectStatus.NotAssigned,
        ProspectAssignmentStatus.Rejected => ProspectStatus.Rejected,
        _ => ProspectStatus.Failed,
    };

    private void MarkExhausted(int attempts, string crmId, (HashSet<string> Exhausted, HashSet<string> Abandoned) sets)
    {
        if (attempts >= settings.MaxAttempts)
        {
            sets.Exhausted.Add(crmId);
        }

        if (attempts > settings.MaxAttempts)
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

    private void Apply(ProspectAssignment row, ProspectResult answer, DateTimeOffset now)
    {
        var (previousCode, previousMessage) = (row.ErrorCode, row.ErrorMessage);
        row.UpdatedAt = now;
        row.GongRequestId = answer.GongRequestId ?? row.GongRequestId;
        row.ErrorCode = answer.ErrorCode;
        row.ErrorMessage = answer.ErrorMessage;
        switch (answer.Kind)
        {
            case ProspectResultKind.Failed when answer.ErrorCode == "RetriesExhausted":
                row.Status = ProspectAssignmentStatus.Failed;
                row.ErrorMessage = $"{row.Attempts} calls carrying this prospect ended without a trusted answer (Dispatch:MaxAttempts = {settings.MaxAttempts}); {answer.ErrorMessage}; last: {previousCode}: {previousMessage}";
                row.ReconcileFirst = false;
                row.CompletedAt = now;
                break;
            case ProspectResultKind.Assigned:
            case ProspectResultKind.NotAssigned:
            case ProspectResultKind.Failed:
                row.Status = answer.Kind switch
                {
                    ProspectResultKind.Assigned => ProspectAssignmentStatus.Assigned,
                    ProspectResultKind.NotAssigned => ProspectAssignmentStatus.NotAssigned,
                    _ => ProspectAssignmentStatus.Failed,
                };
                row.FlowInstanceId = answer.FlowInstanceId;
                row.FlowInstanceStatus = answer.FlowInstanceStatus;
                row.Reconciled = answer.Reconciled;
                row.ReconcileFirst = false;
                row.CompletedAt = now;
                break;
            case ProspectResultKind.RetryLater when answer.ReconcileFirst:
                // The call may have assigned it: even with the attempts spent, one more lookup (after the call can no
                // longer commit) decides between Assigned and Failed/RetriesExhausted; it is never sent again.
                row.Attempts++;
                row.Status = ProspectAssignmentStatus.Pending;
                row.ReconcileFirst = true;
                row.AvailableAt = answer.NotBefore ?? now + settings.RetryDelay;
                break;
            case ProspectResultKind.RetryLater:
                row.Attempts++;
                if (row.Attempts >= settings.MaxAttempts)
                {
                    row.Status = ProspectAssignmentStatus.Failed;
                    row.ErrorCode = "RetriesExhausted";
                    row.ErrorMessage = $"{row.Attempts} calls carrying this prospect ended without a trusted answer (Dispatch:MaxAttempts = {settings.MaxAttempts}); last: {answer.ErrorCode}: {answer.ErrorMessage}";
                    row.ReconcileFirst = false;
                    row.CompletedAt = now;
                }
                else
                {
                    row.Status = ProspectAssignmentStatus.Pending;
                    row.ReconcileFirst = answer.ReconcileFirst;
                    row.AvailableAt = answer.NotBefore ?? now + settings.RetryDelay;
                }

                break;
            default:
                // Not processed: no attempt used, and an earlier uncertainty about this id still stands.
                row.Status = ProspectAssignmentStatus.Pending;
                row.ReconcileFirst = row.ReconcileFirst || answer.ReconcileFirst;
                if (answer.NotBefore is { } notBefore && notBefore > row.AvailableAt)
                {
                    row.AvailableAt = notBefore;
                }

                break;
        }
    }

    private readonly record struct RequestDelta(int Done, int Assigned, int NotAssigned, int Failed);
}
