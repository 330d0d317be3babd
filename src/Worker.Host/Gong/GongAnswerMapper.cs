using System.Globalization;
using Worker.Host.Dispatch;

namespace Worker.Host.Gong;

/// <summary>
/// Turns Gong's answers into per-prospect results (README "Every call is classified and handled"; DESIGN.md "Gong
/// client"). Pure: no I/O, no clock, no state; the send loop decides which call comes next.
/// </summary>
internal static class GongAnswerMapper
{
    /// <summary>The error code of a prospect absent from both lists of a 200 answer.</summary>
    public const string MissingFromResponse = "MissingFromResponse";

    /// <summary>
    /// A 200 to an assign of <paramref name="ids"/>: <c>prospectsAssigned</c> → Assigned with the flow instance;
    /// <c>prospectsNotAssigned</c> → NotAssigned with Gong's errorCode (blank: "Unknown"), except UnexpectedError →
    /// RetryLater; absent from both lists → Failed MissingFromResponse. An id of <paramref name="uncertain"/> (its earlier
    /// call's outcome was unknown) that Gong calls InvalidState ("already in this flow") is not decided: a lookup must
    /// confirm it, since our own first call most likely put it there.
    /// </summary>
    /// <param name="ids">The ids of the call, unique.</param>
    /// <param name="result">An <see cref="GongCallKind.Answered"/> result with its parsed answer.</param>
    /// <param name="uncertain">Ids that arrived with ReconcileFirst.</param>
    /// <exception cref="ArgumentException">When <paramref name="result"/> carries no answer.</exception>
    public static AssignAnswer MapAssigned(IReadOnlyList<string> ids, GongHttpResult result, IReadOnlySet<string> uncertain)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(uncertain);
        var answer = result?.Answer ?? throw new ArgumentException("An answered call carries its parsed answer.", nameof(result));
        var assigned = ById(answer.ProspectsAssigned, item => item?.CrmProspectId);
        var notAssigned = ById(answer.ProspectsNotAssigned, item => item?.CrmProspectId);
        var decided = new List<ProspectResult>(ids.Count);
        var toConfirm = new List<ProspectResult>();
        foreach (var id in ids)
        {
            if (assigned.TryGetValue(id, out var ok))
            {
                decided.Add(new ProspectResult(id, ProspectResultKind.Assigned, ok.FlowInstanceId, ok.FlowInstanceStatus, GongRequestId: result.GongRequestId));
            }
            else if (notAssigned.TryGetValue(id, out var failure))
            {
                var code = string.IsNullOrWhiteSpace(failure.ErrorCode) ? "Unknown" : failure.ErrorCode;
                var kind = code == "UnexpectedError" ? ProspectResultKind.RetryLater : ProspectResultKind.NotAssigned;
                var outcome = new ProspectResult(id, kind, ErrorCode: code, ErrorMessage: failure.ErrorMessage, GongRequestId: result.GongRequestId);
                (code == "InvalidState" && uncertain.Contains(id) ? toConfirm : decided).Add(outcome);
            }
            else
            {
                decided.Add(new ProspectResult(id, ProspectResultKind.Failed, ErrorCode: MissingFromResponse,
                    ErrorMessage: "Gong's 200 answer listed this prospect neither in prospectsAssigned nor in prospectsNotAssigned",
                    GongRequestId: result.GongRequestId));
            }
        }

        return new AssignAnswer(decided, toConfirm);
    }

    /// <summary>A 200 to a lookup of <paramref name="ids"/>: an id with an open instance in <paramref name="flowId"/> is
    /// Assigned (Reconciled) with that instance; every other id (absent, or only in other flows) is absent.</summary>
    /// <exception cref="ArgumentException">When <paramref name="result"/> carries no answer.</exception>
    public static LookupAnswer MapLookup(IReadOnlyList<string> ids, GongHttpResult result, string flowId)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var answer = result?.Answer ?? throw new ArgumentException("An answered call carries its parsed answer.", nameof(result));
        var inFlow = ById(answer.ProspectsAssigned?.Where(item => string.Equals(item?.FlowId, flowId, StringComparison.Ordinal)), item => item?.CrmProspectId);
        var found = new List<ProspectResult>();
        var absent = new List<string>();
        foreach (var id in ids)
        {
            if (inFlow.TryGetValue(id, out var item))
            {
                found.Add(new ProspectResult(id, ProspectResultKind.Assigned, item.FlowInstanceId, item.FlowInstanceStatus,
                    GongRequestId: result.GongRequestId, Reconciled: true));
            }
            else
            {
                absent.Add(id);
            }
        }

        return new LookupAnswer(found, absent);
    }

    /// <summary>A 400 to an assign of <paramref name="id"/> alone: Failed BadRequest with Gong's message.</summary>
    public static ProspectResult BadRequest(string id, GongHttpResult result) => new(id, ProspectResultKind.Failed, ErrorCode: "BadRequest",
        ErrorMessage: result.Error ?? "Gong refused the request (400)", GongRequestId: result.GongRequestId);

    /// <summary>A 403 or 404: it concerns the flow or the account, not the ids, so every id of the group is Failed
    /// (Forbidden / FlowNotFound) with Gong's message.</summary>
    /// <exception cref="ArgumentOutOfRangeException">For another kind of result.</exception>
    public static ProspectResult RefusedForFlow(string id, GongHttpResult result)
    {
        var code = result.Kind switch
        {
            GongCallKind.Forbidden => "Forbidden",
            GongCallKind.NotFound => "FlowNotFound",
            _ => throw new ArgumentOutOfRangeException(nameof(result), result.Kind, "Only a 403 or a 404 refuses the flow."),
        };
        return new ProspectResult(id, ProspectResultKind.Failed, ErrorCode: code, ErrorMessage: result.Error ?? code, GongRequestId: result.GongRequestId);
    }

    /// <summary>Another status (3xx, another 4xx): not processed as far as HTTP says; RetryLater (one attempt) with the
    /// status as the code (<c>Http409</c>).</summary>
    public static ProspectResult Unexpected(string id, GongHttpResult result) => new(id, ProspectResultKind.RetryLater,
        ErrorCode: "Http" + result.HttpStatus?.ToString(CultureInfo.InvariantCulture), ErrorMessage: result.Error, GongRequestId: result.GongRequestId);

    /// <summary>
    /// An outcome unknown (timeout, reset after sending, 5xx, unreadable 200) or a call cancelled by shutdown: the call
    /// may have reached Gong and may still commit, so one attempt is used, ReconcileFirst is set and nothing happens
    /// before <paramref name="settledAt"/> (the call's start + <see cref="GongOptions.OutcomeSettleTime"/>).
    /// </summary>
    public static ProspectResult Unknown(string id, GongHttpResult result, DateTimeOffset settledAt) => new(id, ProspectResultKind.RetryLater,
        ErrorCode: result.Kind == GongCallKind.Cancelled ? "Shutdown" : "OutcomeUnknown", ErrorMessage: result.Error,
        GongRequestId: result.GongRequestId, ReconcileFirst: true, NotBefore: settledAt);

    /// <summary>Connection refused, DNS failure or the circuit open, after the pipeline's own retries: the send stops and
    /// its prospects wait the connect retry delay (or the breaker's break) without using an attempt.</summary>
    public static SendHalt ConnectionFailed(GongHttpResult result, DateTimeOffset now, GongOptions options)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(options);
        return new SendHalt("ConnectionFailed", result.Error ?? "could not connect to Gong",
            now + (result.Error == "circuit open" ? options.CircuitBreakerBreakDuration : options.ConnectRetryDelay));
    }

    /// <summary>A prospect the send did not get to (429, 401 pause, refused connection, gate, shutdown before sending):
    /// Requeue without using an attempt, with the halt's reason.</summary>
    /// <param name="id">The CRM id.</param>
    /// <param name="halt">Why the send stopped; null when it ended without reaching the id.</param>
    /// <param name="reconcileFirst">Whether an earlier call carrying the id may have assigned it.</param>
    public static ProspectResult NotProcessed(string id, SendHalt? halt, bool reconcileFirst)
    {
        halt ??= new SendHalt("NotSent", "not sent", null);
        return new ProspectResult(id, ProspectResultKind.Requeue, ErrorCode: halt.Code, ErrorMessage: halt.Message,
            ReconcileFirst: reconcileFirst, NotBefore: halt.NotBefore);
    }

    /// <summary>A lookup that got no usable answer: Requeue, still ReconcileFirst (never Assigned on a guess), not before
    /// <paramref name="notBefore"/>.</summary>
    public static ProspectResult LookupFailed(string id, GongHttpResult result, DateTimeOffset notBefore) => new(id, ProspectResultKind.Requeue,
        ErrorCode: "LookupFailed", ErrorMessage: result.Error, ReconcileFirst: true, NotBefore: notBefore);

    /// <summary>A prospect whose attempts are spent (<c>Dispatch:MaxAttempts</c>): Failed RetriesExhausted.</summary>
    public static ProspectResult Exhausted(string id, string why) => new(id, ProspectResultKind.Failed, ErrorCode: "RetriesExhausted",
        ErrorMessage: $"Dispatch:MaxAttempts calls carrying this prospect ended without a trusted answer; {why}");

    private static Dictionary<string, T> ById<T>(IEnumerable<T?>? items, Func<T?, string?> id)
        where T : class
    {
        var byId = new Dictionary<string, T>(StringComparer.Ordinal);
        foreach (var item in items ?? [])
        {
            if (item is not null && id(item) is { } key)
            {
                byId.TryAdd(key, item);
            }
        }

        return byId;
    }
}

/// <summary>What a 200 to an assign decides.</summary>
/// <param name="Decided">Results for the ids Gong's answer settles, in the call's order.</param>
/// <param name="ToConfirm">Uncertain ids Gong calls "already in this flow": their NotAssigned result unless a lookup finds
/// them in the flow.</param>
internal sealed record AssignAnswer(IReadOnlyList<ProspectResult> Decided, IReadOnlyList<ProspectResult> ToConfirm);

/// <summary>What a 200 to a lookup says.</summary>
/// <param name="Found">Ids in the target flow: Assigned, Reconciled.</param>
/// <param name="Absent">Ids not in the target flow, in the call's order.</param>
internal sealed record LookupAnswer(IReadOnlyList<ProspectResult> Found, IReadOnlyList<string> Absent);
