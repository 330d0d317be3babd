using System.Globalization;
using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Operations;
using Worker.Persistence.Entities;

namespace Worker.Host.Gong;

/// <summary>
/// Sends one claimed batch to Gong (DESIGN.md "Gong client") and returns one result per prospect plus one
/// <see cref="GongCall"/> per HTTP call. Every call takes a slot from the shared <see cref="PostgresRateGate"/>.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>200: per prospect; one absent from both lists is Failed (MissingFromResponse), UnexpectedError is RetryLater.
/// A prospect whose earlier call's outcome was unknown and that Gong now calls "already in this flow" (InvalidState) is
/// looked up: found in the flow, it is Assigned (Reconciled) with the instance found, never NotAssigned.</item>
/// <item>429: blocks the gate for every replica until Retry-After (seconds or HTTP date; without it a growing backoff),
/// clamped to MaxRetryAfter, plus RetryAfterMargin; everything left is Requeue without a NotBefore of its own (the gate
/// alone holds the work, so lifting the block releases it).</item>
/// <item>Connection refused / DNS: the Polly pipeline already retried; everything left is Requeue.</item>
/// <item>Timeout, reset after sending, 500/502/503/504, a call cancelled by shutdown: RetryLater (one attempt) with
/// ReconcileFirst and NotBefore = the call's start + <see cref="GongOptions.OutcomeSettleTime"/>: nobody looks the
/// prospects up while the call may still commit or Gong's read side may still lag, and nothing is resent blindly.</item>
/// <item>Ids arriving with ReconcileFirst are looked up before any assign; an id the lookup finds absent is looked up once
/// more after ReconcileDelay (two answers must agree) before it is sent. Ids whose attempts are spent (Exhausted) are
/// only looked up: found, Assigned; absent, Failed RetriesExhausted.</item>
/// <item>400: split in halves until the cause is isolated; a single id still refused is Failed (BadRequest).</item>
/// <item>401: the shared pause (one step of backoff per refused probe) and Requeue everything; 403/404: Failed
/// (Forbidden / FlowNotFound) with Gong's message.</item>
/// </list>
/// </remarks>
internal sealed partial class GongBatchSender(
    GongApiClient client,
    PostgresRateGate gate,
    GongConnectionLanes lanes,
    RateGatePacing pacing,
    GongBatchLimit batchLimit,
    GongDispatchState state,
    IOptions<GongOptions> options,
    WorkerMetrics metrics,
    TimeProvider time,
    ILogger<GongBatchSender> logger) : IGongBatchSender
{
    /// <inheritdoc />
    public async Task<BatchResult> SendAsync(AssignmentBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var send = new Send(batch);
        var ids = batch.CrmProspectIds.Distinct(StringComparer.Ordinal).ToList();
        send.Uncertain.UnionWith(ids.Where(batch.ReconcileFirst.Contains));
        send.MustReconcile.UnionWith(send.Uncertain);
        var exhausted = ids.Where(batch.Exhausted.Contains).ToHashSet(StringComparer.Ordinal);
        foreach (var id in exhausted.Where(id => !send.Uncertain.Contains(id)))
        {
            send.Results[id] = Exhausted(id, "no call of it reached a trusted answer");
        }
        var maxBatch = await EffectiveBatchSizeAsync(cancellationToken).ConfigureAwait(false);
        using var lane = lanes.Acquire();
        send.Lane = lane.Lane;

        var toSend = new List<string>(ids.Count);
        if (send.MustReconcile.Count > 0)
        {
            var reconcile = ids.Where(send.MustReconcile.Contains).ToList();
            foreach (var id in await ReconcileAsync(send, reconcile, confirmAbsent: true, cancellationToken).ConfigureAwait(false))
            {
                if (exhausted.Contains(id))
                {
                    send.Results[id] = Exhausted(id, "Gong's lookup did not find it in the flow");
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
            send.Work.AddLast(new Work(chunk));
        }

        while (send.Halt is null && send.Work.First is { } next)
        {
            send.Work.RemoveFirst();
            await AssignAsync(send, next.Value, cancellationToken).ConfigureAwait(false);
        }

        await ConfirmAlreadyInFlowAsync(send, cancellationToken).ConfigureAwait(false);
        var prospects = ids.Select(id => send.Results.TryGetValue(id, out var result) ? result : Halted(send, id)).ToList();
        return new BatchResult(prospects, send.Calls);
    }

    private static ProspectResult Exhausted(string id, string why) => new(id, ProspectResultKind.Failed, ErrorCode: "RetriesExhausted",
        ErrorMessage: $"Dispatch:MaxAttempts calls carrying this prospect ended without a trusted answer; {why}");

    private static ProspectResult Halted(Send send, string id)
    {
        var halt = send.Halt ?? new HaltReason("NotSent", "not sent", null);
        return new ProspectResult(id, ProspectResultKind.Requeue, ErrorCode: halt.Code, ErrorMessage: halt.Message,
            ReconcileFirst: send.MustReconcile.Contains(id), NotBefore: halt.NotBefore);
    }

    /// <summary>A prospect sent again after an unknown outcome that Gong calls "already in this flow" was most likely put
    /// there by our own first call: a lookup decides (found: Assigned, Reconciled, with the instance found).</summary>
    private async Task ConfirmAlreadyInFlowAsync(Send send, CancellationToken cancellationToken)
    {
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

    private async Task AssignAsync(Send send, Work work, CancellationToken cancellationToken)
    {
        var batch = send.Batch;
        using var unproven = await EnterBatchSizeAsync(send, work, cancellationToken).ConfigureAwait(false);
        if (ReferenceEquals(unproven, BatchSizeCheck.Rechunked))
        {
            return;
        }

        var result = await CallInSlotAsync(send, (lane, deadline) => client.AssignAsync(batch.FlowId, batch.OwnerEmail, work.Ids, lane, deadline, cancellationToken), cancellationToken).ConfigureAwait(false);
        if (result is null)
        {
            return;
        }

        await LearnBatchSizeAsync(send, work, result).ConfigureAwait(false);

        var call = Record(send, "assign", work.Ids.Count, result);
        metrics.BatchFill(work.Ids.Count);
        await ObserveAsync(result).ConfigureAwait(false);

        switch (result.Kind)
        {
            case GongCallKind.Answered:
                Apply(send, work.Ids, result);
                break;
            case GongCallKind.TooManyRequests:
                await BlockAsync(send, result, call).ConfigureAwait(false);
                break;
            case GongCallKind.Unauthorized:
                await PauseForCredentialsAsync(send, result).ConfigureAwait(false);
                break;
            case GongCallKind.Forbidden:
                FailRemaining(send, work.Ids, "Forbidden", result);
                break;
            case GongCallKind.NotFound:
                FailRemaining(send, work.Ids, "FlowNotFound", result);
                break;
            case GongCallKind.BadRequest when work.Ids.Count > 1 && GongBatchLimit.ParseLimit(result.Error) is { } limit && limit < work.Ids.Count:
                // Gong named its size limit (learned above): the same ids in calls of that size.
                Rechunk(send, work, limit);
                break;
            case GongCallKind.BadRequest when work.Ids.Count > 1:
                // A lowered size limit or one bad id: halves isolate either without failing the rest; both halves
                // answered prove a size limit (see LearnBatchSizeAsync).
                var half = (work.Ids.Count + 1) / 2;
                var bisection = new Bisection(work.Ids.Count, result.Error);
                send.Work.AddFirst(new Work(work.Ids.Skip(half).ToArray(), bisection));
                send.Work.AddFirst(new Work(work.Ids.Take(half).ToArray(), bisection));
                LogSplit(batch.BatchId, work.Ids.Count, result.Error);
                break;
            case GongCallKind.BadRequest:
                Set(send, work.Ids, id => new ProspectResult(id, ProspectResultKind.Failed, ErrorCode: "BadRequest",
                    ErrorMessage: result.Error ?? "Gong refused the request (400)", GongRequestId: result.GongRequestId));
                break;
            case GongCallKind.Unexpected:
                Set(send, work.Ids, id => new ProspectResult(id, ProspectResultKind.RetryLater,
                    ErrorCode: "Http" + result.HttpStatus?.ToString(CultureInfo.InvariantCulture),
                    ErrorMessage: result.Error, GongRequestId: result.GongRequestId));
                break;
            case GongCallKind.NotSent:
                send.Halt = new HaltReason("ConnectionFailed", result.Error ?? "could not connect to Gong",
                    time.GetUtcNow() + (result.Error == "circuit open" ? options.Value.CircuitBreakerBreakDuration : options.Value.ConnectRetryDelay));
                break;
            case GongCallKind.Cancelled:
            case GongCallKind.OutcomeUnknown:
                Unknown(send, work, result);
                break;
            case GongCallKind.LateForSlot:
                break;
        }
    }

    /// <summary>The call may have reached Gong and may still commit: one attempt used, and the prospects wait until the
    /// call can no longer commit and Gong's read side caught up, then a lookup comes first (never a blind resend).</summary>
    private void Unknown(Send send, Work work, GongHttpResult result)
    {
        send.MustReconcile.UnionWith(work.Ids);
        var settledAt = result.StartedAt + options.Value.OutcomeSettleTime;
        var code = result.Kind == GongCallKind.Cancelled ? "Shutdown" : "OutcomeUnknown";
        LogUnknown(send.Batch.BatchId, work.Ids.Count, result.HttpStatus, result.Error, settledAt);
        Set(send, work.Ids, id => new ProspectResult(id, ProspectResultKind.RetryLater, ErrorCode: code,
            ErrorMessage: result.Error, GongRequestId: result.GongRequestId, ReconcileFirst: true, NotBefore: settledAt));
        if (result.Kind == GongCallKind.Cancelled)
        {
            send.Halt = new HaltReason("Shutdown", "the worker stopped while a call was in flight", null);
        }
    }

    /// <summary>Looks <paramref name="ids"/> up; records those in the target flow as Assigned (Reconciled). With
    /// <paramref name="confirmAbsent"/>, an id found absent is looked up again after ReconcileDelay (Gong's read side may
    /// lag its write side) and counts as absent only when both answers agree.</summary>
    /// <returns>The ids known not to be in the flow (to send). Ids whose lookup failed get Requeue with ReconcileFirst;
    /// a 429, 401 or shutdown halts the send.</returns>
    private async Task<List<string>> ReconcileAsync(Send send, IReadOnlyList<string> ids, bool confirmAbsent, CancellationToken cancellationToken)
    {
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
            send.Halt = new HaltReason("Shutdown", "the worker stopped before confirming a lookup", null);
            return [];
        }

        send.MustReconcile.UnionWith(absent);
        return await LookupAsync(send, absent, cancellationToken).ConfigureAwait(false);
    }

    private async Task<List<string>> LookupAsync(Send send, IReadOnlyList<string> ids, CancellationToken cancellationToken)
    {
        var batch = send.Batch;
        var absent = new List<string>();
        foreach (var chunk in ids.Chunk(options.Value.MaxBatchSize))
        {
            var result = await CallInSlotAsync(send, (lane, deadline) => client.LookupAsync(chunk, lane, deadline, cancellationToken), cancellationToken).ConfigureAwait(false);
            if (result is null)
            {
                return absent;
            }

            var call = Record(send, "lookup", chunk.Length, result);
            await ObserveAsync(result).ConfigureAwait(false);
            switch (result.Kind)
            {
                case GongCallKind.Answered:
                    break;
                case GongCallKind.TooManyRequests:
                    await BlockAsync(send, result, call).ConfigureAwait(false);
                    metrics.Reconciled("lookup_failed", chunk.Length);
                    return absent;
                case GongCallKind.Unauthorized:
                    await PauseForCredentialsAsync(send, result).ConfigureAwait(false);
                    metrics.Reconciled("lookup_failed", chunk.Length);
                    return absent;
                case GongCallKind.Cancelled:
                    send.Halt = new HaltReason("Shutdown", "the worker stopped during a lookup", null);
                    return absent;
                default:
                    LogLookupFailed(batch.BatchId, chunk.Length, result.HttpStatus, result.Error);
                    metrics.Reconciled("lookup_failed", chunk.Length);
                    Set(send, chunk, id => new ProspectResult(id, ProspectResultKind.Requeue, ErrorCode: "LookupFailed",
                        ErrorMessage: result.Error, ReconcileFirst: true, NotBefore: time.GetUtcNow() + options.Value.ReconcileDelay));
                    continue;
            }

            var inFlow = new Dictionary<string, GongAssignedFlow>(StringComparer.Ordinal);
            foreach (var item in result.Answer!.ProspectsAssigned ?? [])
            {
                if (item?.CrmProspectId is { } id && string.Equals(item.FlowId, batch.FlowId, StringComparison.Ordinal))
                {
                    inFlow.TryAdd(id, item);
                }
            }

            var found = 0;
            foreach (var id in chunk)
            {
                send.MustReconcile.Remove(id);
                if (inFlow.TryGetValue(id, out var item))
                {
                    found++;
                    send.Results[id] = new ProspectResult(id, ProspectResultKind.Assigned, item.FlowInstanceId, item.FlowInstanceStatus,
                        GongRequestId: result.GongRequestId, Reconciled: true);
                }
                else
                {
                    absent.Add(id);
                }
            }

            metrics.Reconciled("found", found);
            metrics.Reconciled("absent", chunk.Length - found);
        }

        return absent;
    }

    /// <summary>Takes a rate-gate slot and makes the call in it; a caller that reaches the send too late for its slot
    /// (a busy machine) sends nothing, gives the slot back and queues again.</summary>
    /// <returns>The call's result, or null when the send halted (gate blocked or unavailable, shutdown).</returns>
    private async Task<GongHttpResult?> CallInSlotAsync(Send send, Func<GongLane, DateTimeOffset?, Task<GongHttpResult>> call, CancellationToken cancellationToken)
    {
        while (true)
        {
            var margin = await WarmUpAsync(send, cancellationToken).ConfigureAwait(false);
            if (margin is null)
            {
                return null;
            }

            var slot = await TakeSlotAsync(send, margin.Value, cancellationToken).ConfigureAwait(false);
            if (slot is null)
            {
                return null;
            }

            var result = await call(send.Lane!, slot.StartNoLaterThan).ConfigureAwait(false);
            if (result.Kind != GongCallKind.LateForSlot)
            {
                return result;
            }

            try
            {
                await gate.RefundAsync(slot.At, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException)
            {
                // The daily count stays one too high: conservative.
                LogGateUnavailable(ex, send.Batch.BatchId);
            }
        }
    }

    private async Task<GateSlot?> TakeSlotAsync(Send send, TimeSpan margin, CancellationToken cancellationToken)
    {
        GateSlot slot;
        try
        {
            slot = await gate.WaitForSlotAsync(margin, send.Batch.Priority, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            send.Halt = new HaltReason("Shutdown", "the worker stopped while waiting for the rate gate", null);
            return null;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            LogGateUnavailable(ex, send.Batch.BatchId);
            send.Halt = new HaltReason("RateGateUnavailable", "the rate gate in Postgres could not be read: " + ex.Message, time.GetUtcNow() + TimeSpan.FromSeconds(5));
            return null;
        }

        metrics.RateGateWait(slot.Waited);
        if (!slot.Taken)
        {
            // A block (429, spent daily budget) is held by the gate alone, so lifting it releases the work at once; only
            // a long queue of slots is the batch's own wait.
            DateTimeOffset? blockedUntil;
            try
            {
                blockedUntil = await gate.GetBlockedUntilAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                blockedUntil = slot.At;
            }

            send.Halt = new HaltReason("RateGateBlocked", slot.Reason ?? "rate gate blocked", blockedUntil is null ? slot.At : null);
            return null;
        }

        return slot;
    }

    private async Task BlockAsync(Send send, GongHttpResult result, GongCall call)
    {
        var o = options.Value;
        var now = time.GetUtcNow();
        var until = result.RetryAfterUntil ?? now + state.NextTooManyRequestsBackoff();
        var retryAfter = until - now;
        var clamped = retryAfter > o.MaxRetryAfter;
        if (clamped)
        {
            // A hostile or broken header (2147483647 s, a date decades ahead) must not park every replica for good.
            LogRetryAfterClamped(send.Batch.BatchId, retryAfter.TotalSeconds, o.MaxRetryAfter);
            retryAfter = o.MaxRetryAfter;
            until = now + retryAfter;
        }

        call.RetryAfterSeconds = retryAfter.TotalSeconds;
        until += o.RetryAfterMargin;
        var reason = string.Create(CultureInfo.InvariantCulture,
            $"429 at {now:O}: Retry-After {(result.RetryAfterUntil is null ? "absent, backoff " : "")}{retryAfter.TotalSeconds:0.###}s{(clamped ? " (clamped to Gong:MaxRetryAfter)" : "")} + margin {o.RetryAfterMargin.TotalSeconds:0.###}s");
        LogThrottled(send.Batch.BatchId, retryAfter.TotalSeconds, until);
        try
        {
            await gate.BlockAsync(until, reason, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            // Other replicas learn of the limit from their own 429s; this batch waits out the block on its own.
            LogGateUnavailable(ex, send.Batch.BatchId);
            send.Halt = new HaltReason("TooManyRequests", reason, until);
            return;
        }

        // The gate alone holds the work: a prospect never carries the block as its own available_at.
        send.Halt = new HaltReason("TooManyRequests", reason, null);
    }

    private async Task PauseForCredentialsAsync(Send send, GongHttpResult result)
    {
        var pause = await state.RecordUnauthorizedAsync(result.Error ?? "401 Unauthorized", result.StartedAt).ConfigureAwait(false);
        LogUnauthorized(send.Batch.BatchId, pause.Reason, pause.NextProbeAt);
        // The shared pause holds the work (one probe after NextProbeAt), not the prospects' own available_at.
        send.Halt = new HaltReason("Unauthorized", pause.Reason, null);
    }

    private static void FailRemaining(Send send, IReadOnlyList<string> ids, string code, GongHttpResult result)
    {
        // 403 and 404 concern the flow or the account, not the ids: the rest of this group would get the same.
        var message = result.Error ?? code;
        Set(send, ids, id => new ProspectResult(id, ProspectResultKind.Failed, ErrorCode: code, ErrorMessage: message, GongRequestId: result.GongRequestId));
        foreach (var work in send.Work)
        {
            Set(send, work.Ids, id => new ProspectResult(id, ProspectResultKind.Failed, ErrorCode: code, ErrorMessage: message, GongRequestId: result.GongRequestId));
        }

        send.Work.Clear();
    }

    private static void Apply(Send send, IReadOnlyList<string> ids, GongHttpResult result)
    {
        var answer = result.Answer!;
        var assigned = new Dictionary<string, GongAssignedFlow>(StringComparer.Ordinal);
        foreach (var item in answer.ProspectsAssigned ?? [])
        {
            if (item?.CrmProspectId is { } id)
            {
                assigned.TryAdd(id, item);
            }
        }

        var notAssigned = new Dictionary<string, GongAssignmentFailure>(StringComparer.Ordinal);
        foreach (var item in answer.ProspectsNotAssigned ?? [])
        {
            if (item?.CrmProspectId is { } id)
            {
                notAssigned.TryAdd(id, item);
            }
        }

        foreach (var id in ids)
        {
            send.MustReconcile.Remove(id);
            if (assigned.TryGetValue(id, out var ok))
            {
                send.Results[id] = new ProspectResult(id, ProspectResultKind.Assigned, ok.FlowInstanceId, ok.FlowInstanceStatus, GongRequestId: result.GongRequestId);
            }
            else if (notAssigned.TryGetValue(id, out var failure))
            {
                var code = string.IsNullOrWhiteSpace(failure.ErrorCode) ? "Unknown" : failure.ErrorCode;
                var kind = code == "UnexpectedError" ? ProspectResultKind.RetryLater : ProspectResultKind.NotAssigned;
                var outcome = new ProspectResult(id, kind, ErrorCode: code, ErrorMessage: failure.ErrorMessage, GongRequestId: result.GongRequestId);
                if (code == "InvalidState" && send.Uncertain.Contains(id))
                {
                    // After an unknown outcome "already in this flow" may be our own first call: a lookup decides.
                    send.ToConfirm[id] = outcome;
                }
                else
                {
                    send.Results[id] = outcome;
                }
            }
            else
            {
                send.Results[id] = new ProspectResult(id, ProspectResultKind.Failed, ErrorCode: "MissingFromResponse",
                    ErrorMessage: "Gong's 200 answer listed this prospect neither in prospectsAssigned nor in prospectsNotAssigned",
                    GongRequestId: result.GongRequestId);
            }
        }
    }

    private static void Set(Send send, IEnumerable<string> ids, Func<string, ProspectResult> result)
    {
        foreach (var id in ids)
        {
            send.Results.TryAdd(id, result(id));
        }
    }

    private async Task ObserveAsync(GongHttpResult result)
    {
        // Only while a pause is known (the dispatcher refreshes it every turn): no extra round trip per call, and none
        // between a 429 and the block it causes.
        if (result.HttpStatus is { } status && status != 401 && state.Pause is not null)
        {
            await state.RecordAcceptedAsync(result.StartedAt).ConfigureAwait(false);
        }

        if (result.HttpStatus is { } s && s != 429)
        {
            state.RecordNotThrottled();
        }
    }

    private GongCall Record(Send send, string endpoint, int count, GongHttpResult result)
    {
        var outcomeClass = GongCallClassifier.ToOutcomeClass(result.Kind);
        metrics.GongCall(endpoint, outcomeClass.ToString(), result.HttpStatus, result.Duration);
        var call = new GongCall
        {
            BatchId = send.Batch.BatchId,
            CallId = Guid.CreateVersion7(result.StartedAt),
            Endpoint = endpoint,
            FlowId = send.Batch.FlowId,
            OwnerEmail = send.Batch.OwnerEmail,
            ProspectCount = count,
            HttpStatus = result.HttpStatus,
            GongRequestId = result.GongRequestId,
            OutcomeClass = outcomeClass,
            Error = result.Error is { } e ? UserText.Truncate(e, 2000) : null,
            StartedAt = result.StartedAt,
            DurationMs = result.Duration.TotalMilliseconds,
            // Filled by the dispatcher with Dispatch:ReplicaName (README: the name in gong_calls.replica).
            Replica = null,
        };
        send.Calls.Add(call);
        return call;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gong answered 429 for batch {BatchId}: gate blocked for every replica for {RetryAfterSeconds} s until {Until:O}")]
    private partial void LogThrottled(Guid batchId, double retryAfterSeconds, DateTimeOffset until);

    [LoggerMessage(Level = LogLevel.Error, Message = "Gong refused the credentials (401) for batch {BatchId}: {Reason}; dispatch paused, next probe at {NextProbeAt:O}")]
    private partial void LogUnauthorized(Guid batchId, string reason, DateTimeOffset nextProbeAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gong answered 400 for {Count} prospects of batch {BatchId}; splitting in halves: {Error}")]
    private partial void LogSplit(Guid batchId, int count, string? error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outcome unknown for {Count} prospects of batch {BatchId} (HTTP {HttpStatus}: {Error}); they are looked up from {SettledAt:O}, once the call can no longer commit")]
    private partial void LogUnknown(Guid batchId, int count, int? httpStatus, string? error, DateTimeOffset settledAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gong's Retry-After for batch {BatchId} was {RetryAfterSeconds} s; clamped to Gong:MaxRetryAfter {MaxRetryAfter}")]
    private partial void LogRetryAfterClamped(Guid batchId, double retryAfterSeconds, TimeSpan maxRetryAfter);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lookup failed for {Count} prospects of batch {BatchId} (HTTP {HttpStatus}: {Error}); they wait, to be reconciled first")]
    private partial void LogLookupFailed(Guid batchId, int count, int? httpStatus, string? error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Rate gate unavailable for batch {BatchId}; the batch goes back to Pending")]
    private partial void LogGateUnavailable(Exception exception, Guid batchId);

    private sealed record Work(IReadOnlyList<string> Ids, Bisection? SplitFrom = null);

    private sealed record HaltReason(string Code, string Message, DateTimeOffset? NotBefore);

    private sealed class Send(AssignmentBatch batch)
    {
        public AssignmentBatch Batch { get; } = batch;

        public Dictionary<string, ProspectResult> Results { get; } = new(StringComparer.Ordinal);

        public HashSet<string> MustReconcile { get; } = new(StringComparer.Ordinal);

        /// <summary>Ids whose earlier call's outcome was unknown (ReconcileFirst on arrival).</summary>
        public HashSet<string> Uncertain { get; } = new(StringComparer.Ordinal);

        /// <summary>Uncertain ids a resend found "already in this flow", to be confirmed by a lookup.</summary>
        public Dictionary<string, ProspectResult> ToConfirm { get; } = new(StringComparer.Ordinal);

        public LinkedList<Work> Work { get; } = new();

        public List<GongCall> Calls { get; } = [];

        public HaltReason? Halt { get; set; }

        public GongLane? Lane { get; set; }
    }
}
