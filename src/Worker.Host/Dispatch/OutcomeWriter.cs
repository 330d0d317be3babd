using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Contracts;
using Worker.Host.Relay;
using Worker.Persistence;
using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

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
/// Records an answered batch in one transaction: its prospect rows (moved by <see cref="ProspectStateMachine"/>), its
/// <c>gong_calls</c> rows, the request counters and statuses, and the outbox events of requests that became complete.
/// Every timestamp comes from the injected <see cref="TimeProvider"/>.
/// </summary>
internal sealed class OutcomeWriter(
    IDbContextFactory<WorkerDbContext> contextFactory,
    IOptions<DispatchOptions> options,
    ProspectStateMachine stateMachine,
    TimeProvider timeProvider)
{
    private const string InsertCallSql = """
        INSERT INTO gong_calls (batch_id, call_id, endpoint, flow_id, owner_email, prospect_count, http_status, gong_request_id,
            outcome_class, error, retry_after_seconds, started_at, duration_ms, replica)
        VALUES (@batch, @call, @endpoint, @flow, @owner, @count, @status, @request, @class, @error, @retry_after, @started, @duration, @replica)
        ON CONFLICT (batch_id, call_id) DO NOTHING
        """;

    private const string CompleteRequestsSql = $"""
        SELECT id FROM assignment_requests WHERE id = ANY(@ids) ORDER BY id FOR UPDATE;
        UPDATE assignment_requests r SET
            pending_count = r.pending_count - v.done,
            assigned_count = r.assigned_count + v.assigned,
            not_assigned_count = r.not_assigned_count + v.not_assigned,
            failed_count = r.failed_count + v.failed,
            status = CASE WHEN r.pending_count - v.done > 0 THEN r.status
                WHEN r.assigned_count + v.assigned > 0
                     AND r.not_assigned_count + v.not_assigned + r.failed_count + v.failed + r.rejected_count = 0 THEN {StatusSql.RequestSucceeded}
                WHEN r.assigned_count + v.assigned > 0 THEN {StatusSql.RequestPartiallySucceeded}
                ELSE {StatusSql.RequestFailed} END,
            completed_at = CASE WHEN r.pending_count - v.done > 0 THEN r.completed_at ELSE @now END
        FROM unnest(@ids, @done, @assigned, @not_assigned, @failed) AS v(id, done, assigned, not_assigned, failed)
        WHERE r.id = v.id AND r.status IS NULL
        RETURNING r.id, r.pending_count;
        """;

    private readonly DispatchOptions settings = options.Value;

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
            stateMachine.Apply(row, answer, now);
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
                db.OutboxMessages.Add(OutboxEvents.ForCompleted(FlowAssignmentCompletedFactory.FromStored(request), request.Id, now));
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

    private readonly record struct RequestDelta(int Done, int Assigned, int NotAssigned, int Failed);
}
