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
/// <item>200: per prospect; one absent from both lists is Failed (MissingFromResponse), UnexpectedError is RetryLater.</item>
/// <item>429: blocks the gate for every replica until Retry-After (seconds or HTTP date; without it a growing
/// backoff) plus RetryAfterMargin; everything left is Requeue (no attempt used).</item>
/// <item>Connection refused / DNS: the Polly pipeline already retried; everything left is Requeue.</item>
/// <item>Timeout, reset after sending, 500/502/503/504: wait ReconcileDelay, look the prospects up, record those
/// already in the flow as Assigned (Reconciled), resend the rest once through the gate; if the lookup fails,
/// Requeue with ReconcileFirst. A resend whose outcome is again unknown is RetryLater with ReconcileFirst.</item>
/// <item>400: split in halves until the cause is isolated; a single id still refused is Failed (BadRequest).</item>
/// <item>401: pause (probe backoff) and Requeue everything; 403/404: Failed (Forbidden / FlowNotFound) with Gong's message.</item>
/// </list>
/// Ids arriving with ReconcileFirst are looked up before any assign. Shutdown never abandons a sent call silently.
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
    private static readonly string Replica = Environment.MachineName;

    /// <inheritdoc />
    public async Task<BatchResult> SendAsync(AssignmentBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var send = new Send(batch);
        var ids = batch.CrmProspectIds.Distinct(StringComparer.Ordinal).ToList();
        send.MustReconcile.UnionWith(ids.Where(batch.ReconcileFirst.Contains));
        var maxBatch = await EffectiveBatchSizeAsync(cancellationToken).ConfigureAwait(false);
        using var lane = lanes.Acquire();
        send.Lane = lane.Lane;

        var toSend = new List<string>(ids.Count);
        if (send.MustReconcile.Count > 0)
        {
            var reconcile = ids.Where(send.MustReconcile.Contains).ToList();
            toSend.AddRange(await ReconcileAsync(send, reconcile, cancellationToken).ConfigureAwait(false));
        }

        toSend.AddRange(ids.Where(id => !batch.ReconcileFirst.Contains(id)));
        foreach (var chunk in toSend.Chunk(maxBatch))
        {
            send.Work.AddLast(new Work(chunk, Resend: false));
        }

        while (send.Halt is null && send.Work.First is { } next)
        {
            send.Work.RemoveFirst();
            await AssignAsync(send, next.Value, cancellationToken).ConfigureAwait(false);
        }

        var prospects = ids.Select(id => send.Results.TryGetValue(id, out var result) ? result : Halted(send, id)).ToList();
        return new BatchResult(prospects, send.Calls);
    }

    private static ProspectResult Halted(Send send, string id)
    {
        var halt = send.Halt ?? new HaltReason("NotSent", "not sent", null);
        return new ProspectResult(id, ProspectResultKind.Requeue, ErrorCode: halt.Code, ErrorMessage: halt.Message,
            ReconcileFirst: send.MustReconcile.Contains(id), NotBefore: halt.NotBefore);
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
        Observe(result);

        switch (result.Kind)
        {
            case GongCallKind.Answered:
                Apply(send, work.Ids, result);
                break;
            case GongCallKind.TooManyRequests:
                await BlockAsync(send, result, call).ConfigureAwait(false);
                break;
            case GongCallKind.Unauthorized:
                PauseForCredentials(send, result);
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
                send.Work.AddFirst(new Work(work.Ids.Skip(half).ToArray(), work.Resend, bisection));
                send.Work.AddFirst(new Work(work.Ids.Take(half).ToArray(), work.Resend, bisection));
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
                send.MustReconcile.UnionWith(work.Ids);
                send.Halt = new HaltReason("Shutdown", "the worker stopped while the call was in flight", null);
                break;
            case GongCallKind.LateForSlot:
                break;
            case GongCallKind.OutcomeUnknown:
                await ReconcileAfterUnknownAsync(send, work, result, cancellationToken).ConfigureAwait(false);
                break;
        }
    }

    private async Task ReconcileAfterUnknownAsync(Send send, Work work, GongHttpResult result, CancellationToken cancellationToken)
    {
        send.MustReconcile.UnionWith(work.Ids);
        LogUnknown(send.Batch.BatchId, work.Ids.Count, result.HttpStatus, result.Error);
        if (work.Resend)
        {
            Set(send, work.Ids, id => new ProspectResult(id, ProspectResultKind.RetryLater, ErrorCode: "OutcomeUnknown",
                ErrorMessage: result.Error, GongRequestId: result.GongRequestId, ReconcileFirst: true));
            return;
        }

        try
        {
            // Gong's read side may lag its write side: look too early and a committed assign seems absent.
            await Task.Delay(options.Value.ReconcileDelay, time, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            send.Halt = new HaltReason("Shutdown", "the worker stopped before reconciling an unknown outcome", null);
            return;
        }

        var absent = await ReconcileAsync(send, work.Ids, cancellationToken).ConfigureAwait(false);
        if (absent.Count > 0)
        {
            send.Work.AddFirst(new Work(absent.ToArray(), Resend: true));
        }
    }

    /// <summary>Looks <paramref name="ids"/> up; records those in the target flow as Assigned (Reconciled).</summary>
    /// <returns>The ids known not to be in the flow (to send). Ids whose lookup failed get Requeue with ReconcileFirst;
    /// a 429, 401 or shutdown halts the send.</returns>
    private async Task<List<string>> ReconcileAsync(Send send, IReadOnlyList<string> ids, CancellationToken cancellationToken)
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
            Observe(result);
            switch (result.Kind)
            {
                case GongCallKind.Answered:
                    break;
                case GongCallKind.TooManyRequests:
                    await BlockAsync(send, result, call).ConfigureAwait(false);
                    metrics.Reconciled("lookup_failed", chunk.Length);
                    return absent;
                case GongCallKind.Unauthorized:
                    PauseForCredentials(send, result);
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
            slot = await gate.WaitForSlotAsync(margin, cancellationToken).ConfigureAwait(false);
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
            send.Halt = new HaltReason("RateGateBlocked", slot.Reason ?? "rate gate blocked", slot.At);
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
        call.RetryAfterSeconds = retryAfter.TotalSeconds;
        until += o.RetryAfterMargin;
        var reason = string.Create(CultureInfo.InvariantCulture,
            $"429 at {now:O}: Retry-After {(result.RetryAfterUntil is null ? "absent, backoff" : "")} {retryAfter.TotalSeconds:0.###}s + margin {o.RetryAfterMargin.TotalSeconds:0.###}s");
        LogThrottled(send.Batch.BatchId, retryAfter.TotalSeconds, until);
        try
        {
            await gate.BlockAsync(until, reason, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            // The batch still waits (NotBefore); other replicas learn of the limit from their own 429s.
            LogGateUnavailable(ex, send.Batch.BatchId);
        }

        send.Halt = new HaltReason("TooManyRequests", reason, until);
    }

    private void PauseForCredentials(Send send, GongHttpResult result)
    {
        var pause = state.RecordUnauthorized(result.Error ?? "401 Unauthorized");
        LogUnauthorized(send.Batch.BatchId, pause.Reason, pause.NextProbeAt);
        send.Halt = new HaltReason("Unauthorized", pause.Reason, pause.NextProbeAt);
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
                send.Results[id] = new ProspectResult(id, kind, ErrorCode: code, ErrorMessage: failure.ErrorMessage, GongRequestId: result.GongRequestId);
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

    private void Observe(GongHttpResult result)
    {
        if (result.HttpStatus is { } status && status != 401)
        {
            state.RecordAccepted();
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
            Endpoint = endpoint,
            FlowId = send.Batch.FlowId,
            OwnerEmail = send.Batch.OwnerEmail,
            ProspectCount = count,
            HttpStatus = result.HttpStatus,
            GongRequestId = result.GongRequestId,
            OutcomeClass = outcomeClass,
            Error = result.Error is { Length: > 2000 } e ? e[..2000] : result.Error,
            StartedAt = result.StartedAt,
            DurationMs = result.Duration.TotalMilliseconds,
            Replica = Replica,
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outcome unknown for {Count} prospects of batch {BatchId} (HTTP {HttpStatus}: {Error}); reconciling through the lookup")]
    private partial void LogUnknown(Guid batchId, int count, int? httpStatus, string? error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lookup failed for {Count} prospects of batch {BatchId} (HTTP {HttpStatus}: {Error}); they wait, to be reconciled first")]
    private partial void LogLookupFailed(Guid batchId, int count, int? httpStatus, string? error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Rate gate unavailable for batch {BatchId}; the batch goes back to Pending")]
    private partial void LogGateUnavailable(Exception exception, Guid batchId);

    private sealed record Work(IReadOnlyList<string> Ids, bool Resend, Bisection? SplitFrom = null);

    private sealed record HaltReason(string Code, string Message, DateTimeOffset? NotBefore);

    private sealed class Send(AssignmentBatch batch)
    {
        public AssignmentBatch Batch { get; } = batch;

        public Dictionary<string, ProspectResult> Results { get; } = new(StringComparer.Ordinal);

        public HashSet<string> MustReconcile { get; } = new(StringComparer.Ordinal);

        public LinkedList<Work> Work { get; } = new();

        public List<GongCall> Calls { get; } = [];

        public HaltReason? Halt { get; set; }

        public GongLane? Lane { get; set; }
    }
}
