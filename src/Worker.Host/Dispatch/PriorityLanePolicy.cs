using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Gong;
using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

/// <summary>A ready group and the tier it is served in (its most urgent available lane).</summary>
/// <param name="Group">The group.</param>
/// <param name="Tier">High, Normal or Bulk.</param>
internal sealed record ReadyGroup(PendingGroup Group, ProspectPriority Tier);

/// <summary>One look's plan: ready groups in serving order, the groups a bulk turn may take, and when the next group
/// becomes ready.</summary>
/// <param name="Ready">Ready groups, High tier first, then Normal, then Bulk; within a tier the group served longest
/// ago (or never) first, then the oldest.</param>
/// <param name="BulkCandidates">Ready groups with bulk rows available, served longest ago first (empty under the daily
/// reserve): where an owed bulk turn goes.</param>
/// <param name="NextReadyAt">When the earliest group not yet ready becomes ready (MaxValue: none).</param>
internal sealed record LanePlan(IReadOnlyList<ReadyGroup> Ready, IReadOnlyList<PendingGroup> BulkCandidates, DateTimeOffset NextReadyAt);

/// <summary>
/// The dispatch order across priority lanes (issue 15): which ready groups go first, when a bulk turn is owed, and
/// whether only high-priority work may be claimed (the daily reserve). Thread-safe; one per replica.
/// </summary>
/// <remarks>
/// A group is ready as before (MaxBatchSize pending, or its oldest waited MaxBatchDelay) or when its oldest
/// high-priority row waited <see cref="DispatchOptions.HighPriorityMaxBatchDelay"/>. Ready groups are served by tier,
/// the most urgent lane they have available: every High group before any Normal, every Normal before any Bulk; within
/// a tier, fair turns. Bulk never starves: each claimed batch that serves no bulk first earns
/// share / (1 − share) of a bulk turn while bulk work is ready, and once a whole turn is earned (<see cref="BulkTurnDue"/>)
/// the next claim takes a bulk group's bulk rows first; so at least <see cref="DispatchOptions.BulkMinimumShare"/> of this replica's batches
/// serve bulk whenever bulk work is ready (every replica does the same, so the share holds overall).
/// </remarks>
internal sealed class PriorityLanePolicy(
    NpgsqlDataSource dataSource,
    IOptions<DispatchOptions> options,
    IOptions<GongOptions> gongOptions,
    TimeProvider timeProvider)
{
    private readonly Lock sync = new();
    private double bulkCredit;

    /// <summary>Bulk turns earned and not yet taken (0–1); exposed for tests.</summary>
    public double BulkCredit
    {
        get
        {
            lock (sync)
            {
                return bulkCredit;
            }
        }
    }

    /// <summary>Orders <paramref name="groups"/> for claiming at <paramref name="now"/>.</summary>
    /// <param name="groups">One look at the pending groups.</param>
    /// <param name="now">The dispatcher's clock.</param>
    /// <param name="highOnly">Only groups with high-priority rows available may be served (the daily reserve is reached).</param>
    public LanePlan Plan(IReadOnlyList<PendingGroup> groups, DateTimeOffset now, bool highOnly)
    {
        ArgumentNullException.ThrowIfNull(groups);
        var settings = options.Value;
        var ready = new List<ReadyGroup>();
        var nextReadyAt = DateTimeOffset.MaxValue;
        foreach (var group in groups)
        {
            var dueAt = group.Oldest + settings.MaxBatchDelay;
            var highDueAt = group.Lanes.High + settings.HighPriorityMaxBatchDelay;
            // Eligible is null when the store found the group due on its (later) clock reading.
            var isReady = group.Eligible is null || group.Eligible >= settings.MaxBatchSize || (group.Eligible > 0 && dueAt <= now)
                || highDueAt <= now;
            if (isReady && group.Lanes.BestAvailable(now) is { } tier)
            {
                if (!highOnly || tier == ProspectPriority.High)
                {
                    ready.Add(new ReadyGroup(group, tier));
                }

                continue;
            }

            foreach (var at in new[] { dueAt, highDueAt })
            {
                if (at > now)
                {
                    nextReadyAt = Min(nextReadyAt, at.Value);
                }
            }
        }

        ready.Sort((a, b) => (a.Tier, a.Group.LastServed ?? DateTimeOffset.MinValue, a.Group.Oldest)
            .CompareTo((b.Tier, b.Group.LastServed ?? DateTimeOffset.MinValue, b.Group.Oldest)));

        List<PendingGroup> bulk = highOnly ? [] : [.. ready.Select(r => r.Group).Where(g => g.Lanes.Bulk <= now)
            .OrderBy(g => g.LastServed ?? DateTimeOffset.MinValue).ThenBy(g => g.Oldest)];
        return new LanePlan(ready, bulk, nextReadyAt);
    }

    /// <summary>A whole bulk turn is earned: the next claim (while bulk work is ready) takes bulk rows first.</summary>
    public bool BulkTurnDue
    {
        get
        {
            lock (sync)
            {
                // Earned in steps of share / (1 − share): three steps of 1/3 add up to a hair under 1.
                return bulkCredit >= 1 - 1e-9;
            }
        }
    }

    /// <summary>Counts a claimed batch toward the bulk minimum share.</summary>
    /// <param name="batch">The batch claimed.</param>
    /// <param name="servedBulkFirst">It was claimed bulk-first (a bulk turn).</param>
    /// <param name="bulkWaiting">Bulk work was ready when it was claimed (only then is a bulk turn earned).</param>
    public void Claimed(AssignmentBatch batch, bool servedBulkFirst, bool bulkWaiting)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var share = options.Value.BulkMinimumShare;
        lock (sync)
        {
            if (servedBulkFirst || batch.Priority == ProspectPriority.Bulk)
            {
                bulkCredit = Math.Max(0, bulkCredit - 1);
            }
            else if (bulkWaiting && share > 0)
            {
                bulkCredit = share >= 1 ? 1 : Math.Min(1, bulkCredit + (share / (1 - share)));
            }
        }
    }

    /// <summary>
    /// True when the calls counted today reached <c>Gong:DailyCallLimit</c> − reserve (<see cref="GatePriority.DailyReserve"/>):
    /// only high-priority work may be claimed. Reads the shared gate row (one round trip) only when a reserve is set.
    /// </summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task<bool> HighOnlyAsync(CancellationToken cancellationToken)
    {
        var gong = gongOptions.Value;
        if (GatePriority.DailyReserve(gong) == 0)
        {
            return false;
        }

        await using var command = dataSource.CreateCommand("SELECT day_call_count FROM rate_gate WHERE id = 1 AND day = @today");
        command.Parameters.AddWithValue("today", DateOnly.FromDateTime(timeProvider.GetUtcNow().UtcDateTime));
        var count = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return count is int calls && calls >= GatePriority.DailyLimit(ProspectPriority.Normal, gong);
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;
}
