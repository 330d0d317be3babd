using Npgsql;
using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

/// <summary>Smallest available_at of a group's pending rows in each lane (UTC); null when the lane has none.</summary>
/// <param name="High">Oldest high-priority row.</param>
/// <param name="Normal">Oldest normal row.</param>
/// <param name="Bulk">Oldest bulk row.</param>
internal sealed record LaneOldest(DateTimeOffset? High, DateTimeOffset? Normal, DateTimeOffset? Bulk)
{
    /// <summary>The most urgent lane with a row available at <paramref name="now"/>; null when none is.</summary>
    public ProspectPriority? BestAvailable(DateTimeOffset now) =>
        High <= now ? ProspectPriority.High : Normal <= now ? ProspectPriority.Normal : Bulk <= now ? ProspectPriority.Bulk : null;
}

/// <summary>The SQL the dispatcher's group look adds for priority lanes, and reading it back.</summary>
internal static class PriorityLaneSql
{
    /// <summary>
    /// Three columns for the group look (<c>g</c> = one group): the oldest pending row per lane, one probe each on
    /// <c>ix_prospect_assignments_pending_by_group_priority</c> (flow, owner, priority, available_at, id).
    /// </summary>
    public const string OldestPerLane = $"""
        (SELECT p.available_at FROM prospect_assignments p
             WHERE p.status = {StatusSql.Pending} AND p.flow_id = g.flow_id AND p.owner_email = g.owner_email AND p.priority = {StatusSql.High}
             ORDER BY p.available_at LIMIT 1) AS oldest_high,
            (SELECT p.available_at FROM prospect_assignments p
             WHERE p.status = {StatusSql.Pending} AND p.flow_id = g.flow_id AND p.owner_email = g.owner_email AND p.priority = {StatusSql.Normal}
             ORDER BY p.available_at LIMIT 1) AS oldest_normal,
            (SELECT p.available_at FROM prospect_assignments p
             WHERE p.status = {StatusSql.Pending} AND p.flow_id = g.flow_id AND p.owner_email = g.owner_email AND p.priority = {StatusSql.Bulk}
             ORDER BY p.available_at LIMIT 1) AS oldest_bulk
        """;

    /// <summary>Reads the three <see cref="OldestPerLane"/> columns starting at <paramref name="ordinal"/>.</summary>
    public static LaneOldest ReadOldestPerLane(NpgsqlDataReader reader, int ordinal)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return new LaneOldest(Read(reader, ordinal), Read(reader, ordinal + 1), Read(reader, ordinal + 2));
    }

    private static DateTimeOffset? Read(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetFieldValue<DateTimeOffset>(ordinal);
}

/// <summary>What one claim took, lane by lane: the batch's lane and its oldest high-priority row.</summary>
internal sealed class ClaimedLanes
{
    /// <summary>The most urgent lane a row was read from (Bulk until one is read).</summary>
    public ProspectPriority Best { get; private set; } = ProspectPriority.Bulk;

    /// <summary>Smallest available_at of the high-priority rows read; null when none.</summary>
    public DateTimeOffset? OldestHigh { get; private set; }

    /// <summary>Notes one row read from <paramref name="lane"/>, available since <paramref name="availableAt"/>.</summary>
    public void Read(ProspectPriority lane, DateTimeOffset availableAt)
    {
        Best = PriorityLanes.Best(Best, lane);
        if (lane == ProspectPriority.High && (OldestHigh is null || availableAt < OldestHigh))
        {
            OldestHigh = availableAt;
        }
    }
}
