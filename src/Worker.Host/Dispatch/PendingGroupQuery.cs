using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Persistence;

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

/// <summary>
/// Finds the (flow, owner) groups with pending prospects, with what the dispatcher's readiness (MaxBatchSize,
/// MaxBatchDelay) and fairness (served longest ago first) need. Reads only; every timestamp comes from the injected
/// <see cref="TimeProvider"/>.
/// </summary>
internal sealed class PendingGroupQuery(NpgsqlDataSource dataSource, IOptions<DispatchOptions> options, TimeProvider timeProvider)
{
    // One index probe per group on ix_prospect_assignments_pending_by_group (flow, owner, available_at, id): the skip
    // scan's first entry of a group is its oldest pending row. Rows are counted (up to MaxBatchSize) only for groups not
    // yet due by MaxBatchDelay, the only ones readiness-by-size decides; counting every group made one look visit every
    // pending index entry (1.7 s with 1,000,000 pending in 5,000 groups; see README "Benchmarks").
    private const string GroupsSql = $"""
        WITH RECURSIVE g AS (
            (SELECT flow_id, owner_email, available_at FROM prospect_assignments
             WHERE status = {StatusSql.Pending} ORDER BY flow_id, owner_email, available_at LIMIT 1)
            UNION ALL
            SELECT n.flow_id, n.owner_email, n.available_at FROM g CROSS JOIN LATERAL (
                SELECT p.flow_id, p.owner_email, p.available_at FROM prospect_assignments p
                WHERE p.status = {StatusSql.Pending} AND (p.flow_id, p.owner_email) > (g.flow_id, g.owner_email)
                ORDER BY p.flow_id, p.owner_email, p.available_at LIMIT 1) n
        )
        SELECT g.flow_id, g.owner_email, g.available_at AS oldest,
            CASE WHEN g.available_at <= @due THEN NULL ELSE (
                SELECT count(*)::int FROM (
                    SELECT 1 FROM prospect_assignments p
                    WHERE p.status = {StatusSql.Pending} AND p.flow_id = g.flow_id AND p.owner_email = g.owner_email
                      AND p.available_at <= @now
                    LIMIT @max) x) END AS eligible,
            (SELECT b.claimed_at FROM dispatch_batches b
             WHERE b.flow_id = g.flow_id AND b.owner_email = g.owner_email
             ORDER BY b.claimed_at DESC LIMIT 1) AS last_served,
            {PriorityLaneSql.OldestPerLane}
        FROM g
        """;

    private readonly DispatchOptions settings = options.Value;

    /// <summary>Every group with pending prospects, with what readiness and fairness need.</summary>
    public async Task<IReadOnlyList<PendingGroup>> GetPendingGroupsAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(GroupsSql);
        var now = timeProvider.GetUtcNow();
        command.Parameters.AddWithValue("now", now);
        command.Parameters.AddWithValue("due", now - settings.MaxBatchDelay);
        command.Parameters.AddWithValue("max", settings.MaxBatchSize);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAllAsync(
            row => new PendingGroup(
                row.GetString(0),
                row.GetString(1),
                row.GetFieldValue<DateTimeOffset>(2),
                row.IsDBNull(3) ? null : row.GetInt32(3),
                row.IsDBNull(4) ? null : row.GetFieldValue<DateTimeOffset>(4)) { Lanes = PriorityLaneSql.ReadOldestPerLane(row, 5) },
            cancellationToken).ConfigureAwait(false);
    }
}
