using Worker.Host.Gong;
using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

/// <summary>The dispatcher's claiming in priority lanes (issue 15; order in <see cref="PriorityLanePolicy"/>).</summary>
internal sealed partial class DispatcherService
{
    /// <summary>
    /// Claims and starts up to <paramref name="slots"/> batches from the ready groups: the High tier (one batch per group
    /// per look), then Normal
    /// and Bulk in fair rounds (one batch per group per round, a group leaving once a batch comes back partial); before
    /// each High or Normal claim, an owed bulk turn (<see cref="PriorityLanePolicy.BulkTurnDue"/>) goes first.
    /// Returns when the earliest group not yet ready becomes ready (MaxValue: none).
    /// </summary>
    private async Task<DateTimeOffset> ClaimByLaneAsync(IReadOnlyList<PendingGroup> groups, DateTimeOffset now, int slots, CancellationToken cancellationToken)
    {
        var highOnly = await lanes.HighOnlyAsync(cancellationToken).ConfigureAwait(false);
        var plan = lanes.Plan(groups, now, highOnly);
        var bulkWaiting = plan.Ready.Any(r => r.Group.Lanes.Bulk <= now);
        var bulkTurns = new Queue<PendingGroup>(plan.BulkCandidates);
        foreach (var tier in PriorityLanes.All)
        {
            var ready = plan.Ready.Where(r => r.Tier == tier).Select(r => r.Group).ToList();
            while (slots > 0 && ready.Count > 0 && !cancellationToken.IsCancellationRequested)
            {
                foreach (var group in ready.ToList())
                {
                    if (slots > 0 && tier != ProspectPriority.Bulk && lanes.BulkTurnDue && bulkTurns.TryDequeue(out var bulkGroup))
                    {
                        var bulk = await claimer.ClaimAsync(bulkGroup.FlowId, bulkGroup.OwnerEmail, PriorityLanes.BulkFirst, cancellationToken).ConfigureAwait(false);
                        if (bulk is not null)
                        {
                            Start(bulk, servedBulkFirst: true, bulkWaiting);
                            slots--;
                        }
                    }

                    if (slots == 0)
                    {
                        break;
                    }

                    var batch = await claimer.ClaimAsync(group.FlowId, group.OwnerEmail, PriorityLanes.HighFirst, cancellationToken).ConfigureAwait(false);
                    // Drained (or held by another replica's claim): a partial batch takes what was due. A High-tier group gets
                    // one batch per look: whether high rows are left is for the next look to see, so a group whose few
                    // high rows rode in this batch does not take a second, bulk one ahead of the other groups.
                    if (batch is null || batch.CrmProspectIds.Count < settings.MaxBatchSize || tier == ProspectPriority.High)
                    {
                        ready.Remove(group);
                    }

                    if (batch is not null)
                    {
                        Start(batch, servedBulkFirst: false, bulkWaiting);
                        slots--;
                    }
                }
            }
        }

        return plan.NextReadyAt;
    }

    private void Start(AssignmentBatch batch, bool servedBulkFirst, bool bulkWaiting)
    {
        lanes.Claimed(batch, servedBulkFirst, bulkWaiting);
        metrics.PriorityBatchClaimed(PriorityLanes.ToWire(batch.Priority)!);
        running[batch.BatchId] = RunBatchAsync(batch);
    }
}
