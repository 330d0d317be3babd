using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

// The Dispatch <-> Gong contract: what the dispatcher hands its Gong port (IGongBatchSender) and what it gets back.
// The dispatcher gives these results their meaning (ProspectStateMachine); the Gong client only produces them.

/// <summary>A claimed batch: one (flow, owner) group.</summary>
/// <param name="BatchId">The dispatch batch id (dispatch_batches.id).</param>
/// <param name="FlowId">Gong flow id (digits).</param>
/// <param name="OwnerEmail">Flow instance owner email (lower-cased).</param>
/// <param name="CrmProspectIds">Unique CRM ids, 1 to MaxBatchSize (default 200).</param>
/// <param name="ReconcileFirst">Ids whose earlier call had an unknown outcome (or whose lease expired): the sender
/// must look them up before any assign, and resend only those not already in the target flow.</param>
public sealed record AssignmentBatch(
    Guid BatchId,
    string FlowId,
    string OwnerEmail,
    IReadOnlyList<string> CrmProspectIds,
    IReadOnlySet<string> ReconcileFirst)
{
    /// <summary>Ids whose attempts are spent (<c>Dispatch:MaxAttempts</c>): never sent again. Those also in
    /// <see cref="ReconcileFirst"/> are looked up once more (found: Assigned; absent: Failed RetriesExhausted); the rest
    /// are Failed RetriesExhausted at once.</summary>
    public IReadOnlySet<string> Exhausted { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Ids past their attempts whose last lookup itself never came back (the sender crashed, or its replica died,
    /// on it): the dispatcher records them Failed RetriesExhausted without handing them to the sender again, so a batch
    /// that kills its replica every time ends instead of looping.</summary>
    public IReadOnlySet<string> Abandoned { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>The batch's lane (its most urgent row's): a High batch takes the rate gate's next slot ahead of waiting
    /// normal and bulk calls and may use <c>Gong:DailyReserveForHigh</c>.</summary>
    public ProspectPriority Priority { get; init; } = ProspectPriority.Normal;
}

/// <summary>What the dispatcher does with one prospect after a batch.</summary>
public enum ProspectResultKind
{
    /// <summary>Final: in the target flow (from the assign answer or the lookup).</summary>
    Assigned,

    /// <summary>Final: Gong declined (InvalidArgument, InvalidState).</summary>
    NotAssigned,

    /// <summary>Final: no trusted answer (FlowNotFound, Forbidden, BadRequest, MissingFromResponse).</summary>
    Failed,

    /// <summary>Back to Pending and counts one attempt (UnexpectedError, an outcome unknown, a call cancelled by
    /// shutdown); once the attempt budget is spent the dispatcher records Failed/RetriesExhausted, after one last lookup
    /// when <see cref="ProspectResult.ReconcileFirst"/> is set.</summary>
    RetryLater,

    /// <summary>Back to Pending without using an attempt: not processed (429, 401 pause, refused connection, shutdown
    /// before sending, lookup failed).</summary>
    Requeue,
}

/// <summary>One prospect's result from a batch.</summary>
/// <param name="CrmProspectId">The CRM id.</param>
/// <param name="Kind">Final outcome or what to do next.</param>
/// <param name="FlowInstanceId">For Assigned: Gong's flow instance id.</param>
/// <param name="FlowInstanceStatus">For Assigned: Gong's flow instance status.</param>
/// <param name="ErrorCode">Gong's errorCode or the worker's code.</param>
/// <param name="ErrorMessage">Gong's message or the worker's reason.</param>
/// <param name="GongRequestId">Gong requestId of the deciding call.</param>
/// <param name="Reconciled">True when the outcome came from the lookup endpoint.</param>
/// <param name="ReconcileFirst">For RetryLater/Requeue: an assign carrying this id may have been processed; look it up
/// before sending it again.</param>
/// <param name="NotBefore">For RetryLater/Requeue: earliest next dispatch (UTC), e.g. a backoff; null for "as soon as the gate allows".</param>
public sealed record ProspectResult(
    string CrmProspectId,
    ProspectResultKind Kind,
    string? FlowInstanceId = null,
    string? FlowInstanceStatus = null,
    string? ErrorCode = null,
    string? ErrorMessage = null,
    string? GongRequestId = null,
    bool Reconciled = false,
    bool ReconcileFirst = false,
    DateTimeOffset? NotBefore = null);

/// <summary>The results of one batch.</summary>
/// <param name="Prospects">Exactly one result per id of the batch.</param>
/// <param name="Calls">One row per HTTP call made, for <c>gong_calls</c> (written by the dispatcher in its transaction).</param>
public sealed record BatchResult(IReadOnlyList<ProspectResult> Prospects, IReadOnlyList<GongCall> Calls);
