using Microsoft.Extensions.Options;
using Worker.Host.Operations;

namespace Worker.Host.Gong;

/// <summary>
/// Settles prospects whose earlier call's outcome is unknown, through Gong's lookup (<c>POST /v2/flows/prospects</c>)
/// and never by a blind resend (DESIGN.md "Gong client", outcome unknown):
/// <list type="bullet">
/// <item>settle before lookup: the send loop holds an unknown outcome until its call can no longer commit
/// (<see cref="GongOptions.OutcomeSettleTime"/>), so a lookup here sees what Gong did;</item>
/// <item>two agreeing lookups: an id found absent is looked up once more after <see cref="GongOptions.ReconcileDelay"/>
/// (Gong's read side may lag its write side) and counts as absent only when both answers agree;</item>
/// <item>"already in flow" confirmation: a resend Gong calls InvalidState after an unknown outcome was most likely put
/// there by our own first call, so a lookup decides (found: Assigned, Reconciled, with the instance found).</item>
/// </list>
/// </summary>
internal sealed partial class UnknownOutcomeReconciler(
    GongApiClient client,
    GongGatedCaller caller,
    IOptions<GongOptions> options,
    WorkerMetrics metrics,
    TimeProvider time,
    ILogger<UnknownOutcomeReconciler> logger)
{
    /// <summary>Looks <paramref name="ids"/> up; records those in the target flow as Assigned (Reconciled). With
    /// <paramref name="confirmAbsent"/>, an id found absent is looked up again after ReconcileDelay and counts as absent
    /// only when both answers agree.</summary>
    /// <returns>The ids known not to be in the flow (to send). Ids whose lookup failed get Requeue with ReconcileFirst;
    /// a 429, 401 or shutdown halts the send.</returns>
    public async Task<List<string>> ReconcileAsync(BatchSend send, IReadOnlyList<string> ids, bool confirmAbsent, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(send);
        var absent = await LookupAsync(send, ids, cancellationToken).ConfigureAwait(false);
        if (!confirmAbsent || absent.Count == 0 || send.Halt is not null)
        {
            return absent;
        }

        try
        {
            await Task.Delay(options.Value.ReconcileDelay, time, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            send.MustReconcile.UnionWith(absent);
            send.Halt = new SendHalt("Shutdown", "the worker stopped before confirming a lookup", null);
            return [];
        }

        send.MustReconcile.UnionWith(absent);
        return await LookupAsync(send, absent, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Settles <see cref="BatchSend.ToConfirm"/>: found in the flow, Assigned (Reconciled); absent, the
    /// NotAssigned answer stands; not looked up (the send halted), the id keeps ReconcileFirst.</summary>
    public async Task ConfirmAlreadyInFlowAsync(BatchSend send, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(send);
        if (send.ToConfirm.Count == 0)
        {
            return;
        }

        var ids = send.ToConfirm.Keys.ToList();
        if (send.Halt is null)
        {
            send.MustReconcile.UnionWith(ids);
            foreach (var absent in await ReconcileAsync(send, ids, confirmAbsent: false, cancellationToken).ConfigureAwait(false))
            {
                send.Results[absent] = send.ToConfirm[absent];
            }
        }

        foreach (var id in ids.Where(id => !send.Results.ContainsKey(id)))
        {
            send.MustReconcile.Add(id);
        }
    }

    private async Task<List<string>> LookupAsync(BatchSend send, IReadOnlyList<string> ids, CancellationToken cancellationToken)
    {
        var absent = new List<string>();
        foreach (var chunk in ids.Chunk(options.Value.MaxBatchSize))
        {
            var result = await caller.CallAsync(send, "lookup", chunk.Length,
                (lane, deadline) => client.LookupAsync(chunk, lane, deadline, cancellationToken), cancellationToken).ConfigureAwait(false);
            switch (result?.Kind)
            {
                case null:
                    return absent;
                case GongCallKind.Answered:
                    break;
                case GongCallKind.TooManyRequests or GongCallKind.Unauthorized:
                    // The gated caller blocked the gate or paused dispatch, and halted the send.
                    metrics.Reconciled("lookup_failed", chunk.Length);
                    return absent;
                case GongCallKind.Cancelled:
                    send.Halt = new SendHalt("Shutdown", "the worker stopped during a lookup", null);
                    return absent;
                default:
                    LogLookupFailed(send.Batch.BatchId, chunk.Length, result.HttpStatus, result.Error);
                    metrics.Reconciled("lookup_failed", chunk.Length);
                    var notBefore = time.GetUtcNow() + options.Value.ReconcileDelay;
                    send.Settle(chunk, id => GongAnswerMapper.LookupFailed(id, result, notBefore));
                    continue;
            }

            var answer = GongAnswerMapper.MapLookup(chunk, result, send.Batch.FlowId);
            send.MustReconcile.ExceptWith(chunk);
            foreach (var found in answer.Found)
            {
                send.Results[found.CrmProspectId] = found;
            }

            absent.AddRange(answer.Absent);
            metrics.Reconciled("found", answer.Found.Count);
            metrics.Reconciled("absent", answer.Absent.Count);
        }

        return absent;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lookup failed for {Count} prospects of batch {BatchId} (HTTP {HttpStatus}: {Error}); they wait, to be reconciled first")]
    private partial void LogLookupFailed(Guid batchId, int count, int? httpStatus, string? error);
}
