using Microsoft.Extensions.Options;
using Worker.Host.Dispatch;
using Worker.Host.Operations;

namespace Worker.Host.Gong;

/// <summary>
/// Sends one claimed batch to Gong (DESIGN.md "Gong client") and returns one result per prospect plus one
/// <c>gong_calls</c> row per HTTP call. The send loop only: it composes
/// <list type="bullet">
/// <item><see cref="UnknownOutcomeReconciler"/>: ids with ReconcileFirst are looked up before any assign (two agreeing
/// lookups before one counts as absent); an "already in this flow" answer to such an id is confirmed by a lookup;</item>
/// <item><see cref="BatchSizeGuard"/>: calls cut to the batch size Gong accepts, and that size learned from its 400s;</item>
/// <item><see cref="GongGatedCaller"/>: every call in a rate-gate slot, with the 429 block and the 401 pause;</item>
/// <item><see cref="GongAnswerMapper"/>: what each answer means for each prospect.</item>
/// </list>
/// </summary>
/// <remarks>
/// Per assign answer: 200 per prospect (<see cref="GongAnswerMapper.MapAssigned"/>); 400 with a named limit re-chunks,
/// 400 otherwise splits in halves until one id is left (Failed BadRequest); 403/404 fail the rest of the group;
/// another status is RetryLater; an unknown outcome or a call cancelled by shutdown is RetryLater with ReconcileFirst,
/// not before the call's start + <see cref="GongOptions.OutcomeSettleTime"/>; connection refused (after the pipeline's
/// retries), 429 and 401 stop the send, and everything not decided is Requeue. Ids whose attempts are spent (Exhausted)
/// are only looked up: found, Assigned; absent, Failed RetriesExhausted.
/// </remarks>
internal sealed partial class GongBatchSender(
    GongApiClient client,
    GongConnectionLanes lanes,
    GongGatedCaller caller,
    UnknownOutcomeReconciler reconciler,
    BatchSizeGuard batchSize,
    IOptions<GongOptions> options,
    WorkerMetrics metrics,
    TimeProvider time,
    ILogger<GongBatchSender> logger) : IGongBatchSender
{
    /// <inheritdoc />
    public async Task<BatchResult> SendAsync(AssignmentBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var send = new BatchSend(batch);
        var ids = batch.CrmProspectIds.Distinct(StringComparer.Ordinal).ToList();
        send.Uncertain.UnionWith(ids.Where(batch.ReconcileFirst.Contains));
        send.MustReconcile.UnionWith(send.Uncertain);
        var exhausted = ids.Where(batch.Exhausted.Contains).ToHashSet(StringComparer.Ordinal);
        send.Settle(exhausted.Where(id => !send.Uncertain.Contains(id)), id => GongAnswerMapper.Exhausted(id, "no call of it reached a trusted answer"));
        var maxBatch = await batchSize.EffectiveBatchSizeAsync(cancellationToken).ConfigureAwait(false);
        using var lane = lanes.Acquire();
        send.Lane = lane.Lane;
        if (lane.Lane.FirstUse())
        {
            // A new lane opens its connection (and a young process measures its learning burst) now, not after waiting
            // for this replica's one call of an unproven size or for its slot: the handshake is not paid in the gate.
            // Once per lane: while Gong is unreachable, the call's own warm-up is the only one that waits.
            try
            {
                await client.WarmUpAsync(lane.Lane, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Shutdown: the call's own warm-up halts the send.
            }
        }

        var toSend = new List<string>(ids.Count);
        if (send.MustReconcile.Count > 0)
        {
            var reconcile = ids.Where(send.MustReconcile.Contains).ToList();
            foreach (var id in await reconciler.ReconcileAsync(send, reconcile, confirmAbsent: true, cancellationToken).ConfigureAwait(false))
            {
                if (exhausted.Contains(id))
                {
                    send.Results[id] = GongAnswerMapper.Exhausted(id, "Gong's lookup did not find it in the flow");
                }
                else
                {
                    toSend.Add(id);
                }
            }
        }

        toSend.AddRange(ids.Where(id => !send.Uncertain.Contains(id) && !exhausted.Contains(id)));
        foreach (var chunk in toSend.Chunk(maxBatch))
        {
            send.Work.AddLast(new SendWork(chunk));
        }

        while (send.Halt is null && send.Work.First is { } next)
        {
            send.Work.RemoveFirst();
            await AssignAsync(send, next.Value, cancellationToken).ConfigureAwait(false);
        }

        await reconciler.ConfirmAlreadyInFlowAsync(send, cancellationToken).ConfigureAwait(false);
        var prospects = ids.Select(id => send.Results.TryGetValue(id, out var result)
            ? result
            : GongAnswerMapper.NotProcessed(id, send.Halt, send.MustReconcile.Contains(id))).ToList();
        return new BatchResult(prospects, send.Calls);
    }

    private async Task AssignAsync(BatchSend send, SendWork work, CancellationToken cancellationToken)
    {
        var batch = send.Batch;
        using var unproven = await batchSize.EnterAsync(send, work, cancellationToken).ConfigureAwait(false);
        if (ReferenceEquals(unproven, BatchSizeGuard.Rechunked))
        {
            return;
        }

        var result = await caller.CallAsync(send, "assign", work.Ids.Count,
            (lane, deadline) => client.AssignAsync(batch.FlowId, batch.OwnerEmail, work.Ids, lane, deadline, cancellationToken), cancellationToken).ConfigureAwait(false);
        if (result is null)
        {
            return;
        }

        await batchSize.LearnAsync(send, work, result).ConfigureAwait(false);
        metrics.BatchFill(work.Ids.Count);
        switch (result.Kind)
        {
            case GongCallKind.Answered:
                var answer = GongAnswerMapper.MapAssigned(work.Ids, result, send.Uncertain);
                send.MustReconcile.ExceptWith(work.Ids);
                foreach (var decided in answer.Decided)
                {
                    send.Results[decided.CrmProspectId] = decided;
                }

                foreach (var unconfirmed in answer.ToConfirm)
                {
                    send.ToConfirm[unconfirmed.CrmProspectId] = unconfirmed;
                }

                break;
            case GongCallKind.TooManyRequests or GongCallKind.Unauthorized:
                // The gated caller blocked the gate or paused dispatch, and halted the send.
                break;
            case GongCallKind.Forbidden or GongCallKind.NotFound:
                // 403 and 404 concern the flow or the account, not the ids: the rest of this group would get the same.
                send.Settle(work.Ids.Concat(send.Work.SelectMany(w => w.Ids)), id => GongAnswerMapper.RefusedForFlow(id, result));
                send.Work.Clear();
                break;
            case GongCallKind.BadRequest when BatchSizeGuard.NamedLimit(work, result) is { } limit:
                // Gong named its size limit (learned above): the same ids in calls of that size.
                send.Rechunk(work, limit);
                break;
            case GongCallKind.BadRequest when work.Ids.Count > 1:
                // A lowered size limit or one bad id: halves isolate either without failing the rest; both halves
                // answered prove a size limit (see BatchSizeGuard.LearnAsync).
                var half = (work.Ids.Count + 1) / 2;
                var bisection = new Bisection(work.Ids.Count, result.Error);
                send.Work.AddFirst(new SendWork(work.Ids.Skip(half).ToArray(), bisection));
                send.Work.AddFirst(new SendWork(work.Ids.Take(half).ToArray(), bisection));
                LogSplit(batch.BatchId, work.Ids.Count, result.Error);
                break;
            case GongCallKind.BadRequest:
                send.Settle(work.Ids, id => GongAnswerMapper.BadRequest(id, result));
                break;
            case GongCallKind.Unexpected:
                send.Settle(work.Ids, id => GongAnswerMapper.Unexpected(id, result));
                break;
            case GongCallKind.NotSent:
                send.Halt = GongAnswerMapper.ConnectionFailed(result, time.GetUtcNow(), options.Value);
                break;
            case GongCallKind.Cancelled or GongCallKind.OutcomeUnknown:
                Unknown(send, work, result);
                break;
        }
    }

    /// <summary>The call may have reached Gong and may still commit: one attempt used, and the prospects wait until the
    /// call can no longer commit and Gong's read side caught up, then a lookup comes first (never a blind resend).</summary>
    private void Unknown(BatchSend send, SendWork work, GongHttpResult result)
    {
        send.MustReconcile.UnionWith(work.Ids);
        var settledAt = result.StartedAt + options.Value.OutcomeSettleTime;
        LogUnknown(send.Batch.BatchId, work.Ids.Count, result.HttpStatus, result.Error, settledAt);
        send.Settle(work.Ids, id => GongAnswerMapper.Unknown(id, result, settledAt));
        if (result.Kind == GongCallKind.Cancelled)
        {
            send.Halt = new SendHalt("Shutdown", "the worker stopped while a call was in flight", null);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gong answered 400 for {Count} prospects of batch {BatchId}; splitting in halves: {Error}")]
    private partial void LogSplit(Guid batchId, int count, string? error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outcome unknown for {Count} prospects of batch {BatchId} (HTTP {HttpStatus}: {Error}); they are looked up from {SettledAt:O}, once the call can no longer commit")]
    private partial void LogUnknown(Guid batchId, int count, int? httpStatus, string? error, DateTimeOffset settledAt);
}
