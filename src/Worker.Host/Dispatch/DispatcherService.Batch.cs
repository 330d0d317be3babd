using Worker.Host.Operations;

namespace Worker.Host.Dispatch;

/// <summary>Runs one claimed batch: sends it under a kept lease, turns a crash into outcome-unknown results, records the
/// results (with retries) and reports them.</summary>
internal sealed partial class DispatcherService
{
    private async Task RunBatchAsync(AssignmentBatch batch)
    {
        await Task.Yield();
        using var activity = WorkerTracing.StartBatch(batch);
        LogClaimed(batch.BatchId, batch.FlowId, batch.CrmProspectIds.Count, batch.ReconcileFirst.Count);
        // The claim set the lease a moment ago; counting from now less a second keeps the estimate on the safe side.
        var lease = new LeaseEnd(timeProvider.GetUtcNow() + settings.LeaseDuration - TimeSpan.FromSeconds(1));
        using var leaseCancellation = new CancellationTokenSource();
        var keeping = KeepLeaseAsync(batch.BatchId, lease, leaseCancellation.Token);
        BatchResult? result = null;
        string? failure = null;
        try
        {
            result = await SendAsync(batch).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (abandonCancellation.IsCancellationRequested)
        {
            LogAbandoned(batch.BatchId);
            failure = "the worker stopped before the Gong sender returned; a call may have been in flight";
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogSendFailed(ex, batch.BatchId);
            failure = $"the Gong sender failed ({ex.GetType().Name}: {ex.Message}); a call may have been in flight";
        }
        finally
        {
            await leaseCancellation.CancelAsync().ConfigureAwait(false);
            await keeping.ConfigureAwait(false);
        }

        // The call may have reached Gong (and may still commit): one attempt used, looked up first once it can no longer
        // commit; ids whose last lookup was this crash end as RetriesExhausted, so a poison batch cannot loop.
        result ??= Crashed(batch, failure ?? "the Gong sender returned nothing");
        try
        {
            var recorded = await WithRetriesAsync(lease, ct => outcomes.RecordAsync(batch, result, ct)).ConfigureAwait(false);
            WorkerTracing.SetOutcome(activity, recorded.LeaseLost ? "lease_lost" : "recorded",
                recorded.Outcomes.GroupBy(o => o.Key.Status).ToDictionary(g => g.Key, g => g.Sum(o => o.Value), StringComparer.Ordinal));
            if (recorded.LeaseLost)
            {
                LogLeaseLost(batch.BatchId);
            }

            foreach (var ((status, errorCode), count) in recorded.Outcomes)
            {
                metrics.ProspectOutcomes(status, errorCode, count);
            }

            foreach (var (priority, count) in recorded.CompletedByPriority)
            {
                metrics.PriorityProspectsCompleted(PriorityLanes.ToWire(priority)!, count);
            }

            if (recorded.CompletedRequests > 0 || recorded.AlreadyRecorded)
            {
                outboxSignal.Notify();
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The lease runs out and another turn (of any replica) reclaims the batch as outcome unknown.
            LogRecordFailed(ex, batch.BatchId);
            WorkerTracing.SetOutcome(activity, "record_failed", error: ex);
        }
        finally
        {
            wake.Notify();
        }
    }

    /// <summary>Sends the batch; ids whose final lookup already crashed once (<see cref="AssignmentBatch.Abandoned"/>) are
    /// not handed to the sender again but end as RetriesExhausted.</summary>
    private async Task<BatchResult> SendAsync(AssignmentBatch batch)
    {
        if (batch.Abandoned.Count == 0)
        {
            return await sender.SendAsync(batch, sendCancellation.Token).WaitAsync(abandonCancellation.Token).ConfigureAwait(false);
        }

        var given = batch.CrmProspectIds.Where(id => !batch.Abandoned.Contains(id)).ToList();
        var results = batch.Abandoned.Select(id => Exhausted(id, "its last lookup never came back (the sender failed or its replica stopped)")).ToList();
        if (given.Count == 0)
        {
            return new BatchResult(results, []);
        }

        var sent = await sender.SendAsync(batch with { CrmProspectIds = given }, sendCancellation.Token).WaitAsync(abandonCancellation.Token).ConfigureAwait(false);
        return new BatchResult([.. sent.Prospects, .. results], sent.Calls);
    }

    private BatchResult Crashed(AssignmentBatch batch, string failure)
    {
        var settledAt = timeProvider.GetUtcNow() + gongOptions.Value.OutcomeSettleTime;
        return new BatchResult(
            [.. batch.CrmProspectIds.Select(id => batch.Exhausted.Contains(id)
                ? Exhausted(id, failure)
                : new ProspectResult(id, ProspectResultKind.RetryLater, ErrorCode: "SenderFailed", ErrorMessage: failure, ReconcileFirst: true, NotBefore: settledAt))],
            []);
    }

    private static ProspectResult Exhausted(string id, string why) => new(id, ProspectResultKind.Failed, ErrorCode: ProspectStateMachine.RetriesExhausted,
        ErrorMessage: $"Dispatch:MaxAttempts calls carrying this prospect ended without a trusted answer; {why}");
}
