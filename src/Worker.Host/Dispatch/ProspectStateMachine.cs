using Microsoft.Extensions.Options;
using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

/// <summary>One allowed move of a prospect row.</summary>
/// <param name="From">Status before; null for a row being inserted.</param>
/// <param name="To">Status after.</param>
/// <param name="By">Who moves it and when (component, SQL or result kind).</param>
internal sealed record ProspectTransition(ProspectAssignmentStatus? From, ProspectAssignmentStatus To, string By);

/// <summary>
/// The prospect state machine (DESIGN.md "Prospect state machine"), in one place: the allowed transitions of
/// <c>prospect_assignments.status</c>, the attempt rule, and <see cref="Apply"/>, which moves an InFlight row by its
/// batch result. The SQL that moves rows (<see cref="BatchClaimer"/>: Pending to InFlight; <see cref="BatchLeases"/>:
/// InFlight to Pending on an expired lease) writes status values from <see cref="StatusSql"/>.
/// </summary>
/// <remarks>
/// <para>Pending → InFlight (claim) → Assigned | NotAssigned | Failed (final), or back to Pending (not decided yet);
/// ingest inserts Pending, or Rejected (final, never sent). Nothing leaves a final status: a re-drive creates a new
/// request instead.</para>
/// <para>Attempt rule (the same on every path): an unknown or unusable outcome uses one attempt
/// (<see cref="ProspectResultKind.RetryLater"/>, a sender crash, an expired lease); an answer that says the call was not
/// processed uses none (<see cref="ProspectResultKind.Requeue"/>). With <c>attempts &gt;= MaxAttempts</c> a prospect is
/// exhausted: never sent again; if reconcile-first it is looked up once more (found: Assigned, else Failed
/// RetriesExhausted), otherwise it ends Failed RetriesExhausted. With <c>attempts &gt; MaxAttempts</c> even that last
/// lookup was lost (its replica died on it): abandoned, Failed RetriesExhausted without a call.</para>
/// <para>Reconcile-first: set when a call carrying the id may have been processed; the id is looked up before any
/// assign and only re-sent when absent. A Requeue keeps an earlier reconcile-first.</para>
/// </remarks>
internal sealed class ProspectStateMachine(IOptions<DispatchOptions> options)
{
    /// <summary>Error code of a prospect whose attempts ended without a trusted answer.</summary>
    public const string RetriesExhausted = "RetriesExhausted";

    private readonly DispatchOptions settings = options.Value;

    /// <summary>Every allowed transition; any other pair is refused.</summary>
    public static IReadOnlyList<ProspectTransition> Transitions { get; } =
    [
        new(null, ProspectAssignmentStatus.Pending, "ingest: a valid id of a stored request"),
        new(null, ProspectAssignmentStatus.Rejected, "ingest: an invalid id (final, never sent)"),
        new(ProspectAssignmentStatus.Pending, ProspectAssignmentStatus.InFlight, "BatchClaimer: claimed into a batch under a lease"),
        new(ProspectAssignmentStatus.InFlight, ProspectAssignmentStatus.Pending, "RetryLater under the attempt budget (+1 attempt), or reconcile-first RetryLater even with the attempts spent (+1 attempt, one last lookup, never re-sent), Requeue (no attempt), BatchLeases reclaim of an expired lease (+1 attempt, reconcile-first)"),
        new(ProspectAssignmentStatus.InFlight, ProspectAssignmentStatus.Assigned, "Assigned (assign answer or lookup)"),
        new(ProspectAssignmentStatus.InFlight, ProspectAssignmentStatus.NotAssigned, "NotAssigned (Gong declined: every Gong errorCode except UnexpectedError, see GongAnswerMapper)"),
        new(ProspectAssignmentStatus.InFlight, ProspectAssignmentStatus.Failed, "Failed (no trusted answer), or RetryLater without reconcile-first with the attempts spent (RetriesExhausted)"),
    ];

    /// <summary>True when a row may move from <paramref name="from"/> (null: inserted) to <paramref name="to"/>.</summary>
    public static bool IsAllowed(ProspectAssignmentStatus? from, ProspectAssignmentStatus to) =>
        Transitions.Any(t => t.From == from && t.To == to);

    /// <summary>Attempt rule: the attempts are spent (never sent again; looked up once more when reconcile-first).</summary>
    /// <param name="attempts">Attempts used so far (<c>prospect_assignments.attempts</c>).</param>
    public bool IsExhausted(int attempts) => attempts >= settings.MaxAttempts;

    /// <summary>Attempt rule: past the budget, so even the last lookup was lost; ends Failed RetriesExhausted without a call.</summary>
    /// <param name="attempts">Attempts used so far (<c>prospect_assignments.attempts</c>).</param>
    public bool IsAbandoned(int attempts) => attempts > settings.MaxAttempts;

    /// <summary>Attempt rule: whether a result of this kind uses one attempt (RetryLater only; Requeue and finals do not).</summary>
    public static bool UsesAttempt(ProspectResultKind kind) => kind == ProspectResultKind.RetryLater;

    /// <summary>
    /// Moves an InFlight row by its batch result: to a final status, or back to Pending (with attempts, reconcile-first
    /// and availability by the attempt rule). Sets <c>updated_at</c>, and <c>completed_at</c> on a final status.
    /// </summary>
    /// <exception cref="InvalidOperationException">The row is not InFlight (a refused transition).</exception>
    public void Apply(ProspectAssignment row, ProspectResult answer, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(answer);
        var (previousCode, previousMessage) = (row.ErrorCode, row.ErrorMessage);
        var from = row.Status;
        row.UpdatedAt = now;
        row.GongRequestId = answer.GongRequestId ?? row.GongRequestId;
        row.ErrorCode = answer.ErrorCode;
        row.ErrorMessage = answer.ErrorMessage;
        switch (answer.Kind)
        {
            case ProspectResultKind.Failed when answer.ErrorCode == RetriesExhausted:
                Move(row, from, ProspectAssignmentStatus.Failed);
                row.ErrorMessage = $"{row.Attempts} calls carrying this prospect ended without a trusted answer (Dispatch:MaxAttempts = {settings.MaxAttempts}); {answer.ErrorMessage}; last: {previousCode}: {previousMessage}";
                row.ReconcileFirst = false;
                row.CompletedAt = now;
                break;
            case ProspectResultKind.Assigned:
            case ProspectResultKind.NotAssigned:
            case ProspectResultKind.Failed:
                Move(row, from, answer.Kind switch
                {
                    ProspectResultKind.Assigned => ProspectAssignmentStatus.Assigned,
                    ProspectResultKind.NotAssigned => ProspectAssignmentStatus.NotAssigned,
                    _ => ProspectAssignmentStatus.Failed,
                });
                row.FlowInstanceId = answer.FlowInstanceId;
                row.FlowInstanceStatus = answer.FlowInstanceStatus;
                row.Reconciled = answer.Reconciled;
                row.ReconcileFirst = false;
                row.CompletedAt = now;
                break;
            case ProspectResultKind.RetryLater when answer.ReconcileFirst:
                // The call may have assigned it: even with the attempts spent, one more lookup (after the call can no
                // longer commit) decides between Assigned and Failed/RetriesExhausted; it is never sent again.
                row.Attempts++;
                Move(row, from, ProspectAssignmentStatus.Pending);
                row.ReconcileFirst = true;
                row.AvailableAt = answer.NotBefore ?? now + settings.RetryDelay;
                break;
            case ProspectResultKind.RetryLater:
                row.Attempts++;
                if (IsExhausted(row.Attempts))
                {
                    Move(row, from, ProspectAssignmentStatus.Failed);
                    row.ErrorCode = RetriesExhausted;
                    row.ErrorMessage = $"{row.Attempts} calls carrying this prospect ended without a trusted answer (Dispatch:MaxAttempts = {settings.MaxAttempts}); last: {answer.ErrorCode}: {answer.ErrorMessage}";
                    row.ReconcileFirst = false;
                    row.CompletedAt = now;
                }
                else
                {
                    Move(row, from, ProspectAssignmentStatus.Pending);
                    row.ReconcileFirst = answer.ReconcileFirst;
                    row.AvailableAt = answer.NotBefore ?? now + settings.RetryDelay;
                }

                break;
            default:
                // Not processed: no attempt used, and an earlier uncertainty about this id still stands.
                Move(row, from, ProspectAssignmentStatus.Pending);
                row.ReconcileFirst = row.ReconcileFirst || answer.ReconcileFirst;
                if (answer.NotBefore is { } notBefore && notBefore > row.AvailableAt)
                {
                    row.AvailableAt = notBefore;
                }

                break;
        }
    }

    private static void Move(ProspectAssignment row, ProspectAssignmentStatus from, ProspectAssignmentStatus to)
    {
        if (!IsAllowed(from, to))
        {
            throw new InvalidOperationException($"Prospect row {row.Id} ({row.CrmProspectId}): {from} → {to} is not an allowed transition.");
        }

        row.Status = to;
    }
}
