using Microsoft.Extensions.Options;
using Worker.Contracts;
using Worker.Host.Dispatch;
using Worker.Persistence.Entities;

namespace Worker.UnitTests.Dispatch;

/// <summary>Walks every transition of the prospect state machine, allowed and refused, and the attempt rule.</summary>
public sealed class ProspectStateMachineTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly DispatchOptions Settings = new() { MaxAttempts = 3, RetryDelay = TimeSpan.FromSeconds(5) };
    private static readonly ProspectStateMachine Machine = new(Options.Create(Settings));

    // The specification, written out independently of ProspectStateMachine.Transitions.
    private static readonly HashSet<(ProspectAssignmentStatus?, ProspectAssignmentStatus)> Allowed =
    [
        (null, ProspectAssignmentStatus.Pending),
        (null, ProspectAssignmentStatus.Rejected),
        (ProspectAssignmentStatus.Pending, ProspectAssignmentStatus.InFlight),
        (ProspectAssignmentStatus.InFlight, ProspectAssignmentStatus.Pending),
        (ProspectAssignmentStatus.InFlight, ProspectAssignmentStatus.Assigned),
        (ProspectAssignmentStatus.InFlight, ProspectAssignmentStatus.NotAssigned),
        (ProspectAssignmentStatus.InFlight, ProspectAssignmentStatus.Failed),
    ];

    public static TheoryData<ProspectAssignmentStatus?, ProspectAssignmentStatus> EveryPair()
    {
        var data = new TheoryData<ProspectAssignmentStatus?, ProspectAssignmentStatus>();
        foreach (var from in new ProspectAssignmentStatus?[] { null }.Concat(Enum.GetValues<ProspectAssignmentStatus>().Cast<ProspectAssignmentStatus?>()))
        {
            foreach (var to in Enum.GetValues<ProspectAssignmentStatus>())
            {
                data.Add(from, to);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(EveryPair))]
    public void Every_pair_of_statuses_is_allowed_exactly_when_the_table_says_so(ProspectAssignmentStatus? from, ProspectAssignmentStatus to) =>
        Assert.Equal(Allowed.Contains((from, to)), ProspectStateMachine.IsAllowed(from, to));

    [Fact]
    public void The_table_lists_each_allowed_transition_once_and_nothing_else() =>
        Assert.Equal(
            Allowed.OrderBy(t => t.ToString(), StringComparer.Ordinal),
            ProspectStateMachine.Transitions.Select(t => (t.From, t.To)).OrderBy(t => t.ToString(), StringComparer.Ordinal));

    public static TheoryData<string, ProspectResult, int, bool, ProspectAssignmentStatus, int, bool, string?> Results() => new()
    {
        // case, answer, attempts before, reconcile-first before, status after, attempts after, reconcile-first after, error code after
        { "assigned", new("c", ProspectResultKind.Assigned, "fi-1", "Running"), 0, true, ProspectAssignmentStatus.Assigned, 0, false, null },
        { "not assigned", new("c", ProspectResultKind.NotAssigned, ErrorCode: "InvalidState"), 1, false, ProspectAssignmentStatus.NotAssigned, 1, false, "InvalidState" },
        { "failed", new("c", ProspectResultKind.Failed, ErrorCode: "FlowNotFound"), 0, false, ProspectAssignmentStatus.Failed, 0, false, "FlowNotFound" },
        { "exhausted by the sender", new("c", ProspectResultKind.Failed, ErrorCode: ProspectStateMachine.RetriesExhausted), 3, true, ProspectAssignmentStatus.Failed, 3, false, "RetriesExhausted" },
        { "retry under budget", new("c", ProspectResultKind.RetryLater, ErrorCode: "UnexpectedError"), 0, false, ProspectAssignmentStatus.Pending, 1, false, "UnexpectedError" },
        { "retry spends the budget", new("c", ProspectResultKind.RetryLater, ErrorCode: "UnexpectedError"), 2, false, ProspectAssignmentStatus.Failed, 3, false, "RetriesExhausted" },
        { "unknown outcome at the budget: one more lookup", new("c", ProspectResultKind.RetryLater, ErrorCode: "Timeout", ReconcileFirst: true), 2, false, ProspectAssignmentStatus.Pending, 3, true, "Timeout" },
        { "requeue uses no attempt, keeps reconcile-first", new("c", ProspectResultKind.Requeue, ErrorCode: "RateLimited"), 2, true, ProspectAssignmentStatus.Pending, 2, true, "RateLimited" },
        { "requeue may set reconcile-first", new("c", ProspectResultKind.Requeue, ReconcileFirst: true), 0, false, ProspectAssignmentStatus.Pending, 0, true, null },
    };

    [Theory]
    [MemberData(nameof(Results))]
    public void An_in_flight_row_moves_by_its_result_and_the_attempt_rule(
        string name, ProspectResult answer, int attempts, bool reconcileFirst, ProspectAssignmentStatus status, int attemptsAfter, bool reconcileAfter, string? errorCode)
    {
        var row = InFlight(attempts, reconcileFirst);

        Machine.Apply(row, answer, Now);

        Assert.True(ProspectStateMachine.IsAllowed(ProspectAssignmentStatus.InFlight, row.Status), name);
        Assert.Equal((status, attemptsAfter, reconcileAfter, errorCode), (row.Status, row.Attempts, row.ReconcileFirst, row.ErrorCode));
        Assert.Equal(Now, row.UpdatedAt);
        Assert.Equal(status == ProspectAssignmentStatus.Pending ? null : Now, row.CompletedAt);
    }

    [Fact]
    public void A_retried_row_waits_RetryDelay_or_its_NotBefore_and_a_requeue_never_moves_it_earlier()
    {
        var retried = InFlight(0, false);
        Machine.Apply(retried, new("c", ProspectResultKind.RetryLater), Now);
        var notBefore = InFlight(0, false);
        Machine.Apply(notBefore, new("c", ProspectResultKind.RetryLater, NotBefore: Now.AddMinutes(1)), Now);
        var requeued = InFlight(0, false);
        requeued.AvailableAt = Now.AddMinutes(2);
        Machine.Apply(requeued, new("c", ProspectResultKind.Requeue, NotBefore: Now.AddMinutes(1)), Now);

        Assert.Equal(Now + Settings.RetryDelay, retried.AvailableAt);
        Assert.Equal(Now.AddMinutes(1), notBefore.AvailableAt);
        Assert.Equal(Now.AddMinutes(2), requeued.AvailableAt);
    }

    public static TheoryData<ProspectAssignmentStatus, ProspectResultKind> RowsNotInFlight()
    {
        var data = new TheoryData<ProspectAssignmentStatus, ProspectResultKind>();
        foreach (var status in Enum.GetValues<ProspectAssignmentStatus>().Where(s => s != ProspectAssignmentStatus.InFlight))
        {
            foreach (var kind in Enum.GetValues<ProspectResultKind>())
            {
                data.Add(status, kind);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(RowsNotInFlight))]
    public void A_result_for_a_row_that_is_not_in_flight_is_refused(ProspectAssignmentStatus status, ProspectResultKind kind)
    {
        var row = InFlight(0, false);
        row.Status = status;

        Assert.Throws<InvalidOperationException>(() => Machine.Apply(row, new ProspectResult("c", kind), Now));
    }

    [Fact]
    public void Attempt_rule_exhausted_at_MaxAttempts_abandoned_past_it_and_only_RetryLater_uses_an_attempt()
    {
        Assert.Equal([false, false, false, true, true], Enumerable.Range(0, 5).Select(Machine.IsExhausted));
        Assert.Equal([false, false, false, false, true], Enumerable.Range(0, 5).Select(Machine.IsAbandoned));
        Assert.Equal(
            [ProspectResultKind.RetryLater],
            Enum.GetValues<ProspectResultKind>().Where(ProspectStateMachine.UsesAttempt));
    }

    [Fact]
    public void Sql_status_literals_are_the_stored_enum_names()
    {
        Assert.Equal(
            ["'Pending'", "'InFlight'", "'Assigned'", "'NotAssigned'", "'Failed'", "'Rejected'"],
            [StatusSql.Pending, StatusSql.InFlight, StatusSql.Assigned, StatusSql.NotAssigned, StatusSql.Failed, StatusSql.Rejected]);
        Assert.Equal(Enum.GetNames<ProspectAssignmentStatus>().Select(n => $"'{n}'"),
            [StatusSql.Pending, StatusSql.InFlight, StatusSql.Assigned, StatusSql.NotAssigned, StatusSql.Failed, StatusSql.Rejected]);
        Assert.Equal(
            [$"'{RequestStatus.Succeeded}'", $"'{RequestStatus.PartiallySucceeded}'", $"'{RequestStatus.Failed}'"],
            [StatusSql.RequestSucceeded, StatusSql.RequestPartiallySucceeded, StatusSql.RequestFailed]);
    }

    private static ProspectAssignment InFlight(int attempts, bool reconcileFirst) => new()
    {
        Id = 1,
        CrmProspectId = "c",
        FlowId = "1",
        OwnerEmail = "owner@example.com",
        Status = ProspectAssignmentStatus.InFlight,
        Attempts = attempts,
        ReconcileFirst = reconcileFirst,
        AvailableAt = Now.AddSeconds(-1),
    };
}
