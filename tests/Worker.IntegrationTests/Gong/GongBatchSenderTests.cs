using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.Gong;

/// <summary>
/// The Gong client against the Gong simulator on loopback (its fault knobs script each case) and a real Postgres rate
/// gate (issue 4's list, one test per case). The simulator and the replica share a fake clock; the two real-time rate
/// tests run on the system clock.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class GongBatchSenderTests
{
    private const string Flow = GongReplica.FlowId;

    [Fact]
    public async Task A_200_with_98_assigned_1_InvalidState_1_UnexpectedError_retries_only_the_last()
    {
        await using var env = await Env.StartAsync();
        // The simulator's id rules: "blocked-" gets InvalidState, "unexpected-" UnexpectedError.
        var ids = GongReplica.Ids("p", 98).Append("blocked-099").Append("unexpected-100").ToList();

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids), CancellationToken.None));

        Assert.Equal(100, result.Prospects.Count);
        Assert.Equal(98, result.Prospects.Count(p => p.Kind == ProspectResultKind.Assigned && p.FlowInstanceId is not null));
        var invalid = Assert.Single(result.Prospects, p => p.Kind == ProspectResultKind.NotAssigned);
        Assert.Equal(("blocked-099", "InvalidState"), (invalid.CrmProspectId, invalid.ErrorCode));
        Assert.Contains("cool-off", invalid.ErrorMessage, StringComparison.Ordinal);
        var retry = Assert.Single(result.Prospects, p => p.Kind == ProspectResultKind.RetryLater);
        Assert.Equal(("unexpected-100", "UnexpectedError"), (retry.CrmProspectId, retry.ErrorCode));
        Assert.False(retry.ReconcileFirst);

        var call = Assert.Single(result.Calls);
        Assert.Equal(("assign", 200, GongCallOutcomeClass.Answered, 100), (call.Endpoint, call.HttpStatus, call.OutcomeClass, call.ProspectCount));
        var seen = Assert.Single(env.Calls);
        Assert.Equal(seen.RequestId, call.GongRequestId);
        Assert.All(result.Prospects, p => Assert.Equal(call.GongRequestId, p.GongRequestId));

        // Gong's exact wire: the simulator answers 200 only to its body names (crmProspectsIds, flowId,
        // flowInstanceOwnerEmail) with Basic auth of test-key:test-secret; one flow and owner, no duplicate.
        Assert.Equal((200, (string?)null), (seen.Status, seen.Fault));
        Assert.Equal(ids, seen.Ids);
        Assert.Equal((Flow, GongReplica.Owner), (seen.FlowId, seen.OwnerEmail));
        Assert.Equal(0, env.Simulator.State.GetStats().CallsWithDuplicateIds);
    }

    [Fact]
    public async Task A_prospect_absent_from_both_lists_is_Failed_MissingFromResponse()
    {
        await using var env = await Env.StartAsync(simulator: o => o.MissingFromAnswerIdPrefix = "ghost");

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["a", "ghost", "b"]), CancellationToken.None));

        var ghost = Assert.Single(result.Prospects, p => p.CrmProspectId == "ghost");
        Assert.Equal((ProspectResultKind.Failed, "MissingFromResponse"), (ghost.Kind, ghost.ErrorCode));
        Assert.All(result.Prospects.Where(p => p.CrmProspectId != "ghost"), p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        Assert.Equal((2, 0), (Assert.Single(env.Calls).Assigned, env.Calls[0].NotAssigned));
    }

    [Fact]
    public async Task Every_gong_calls_row_names_the_configured_replica()
    {
        await using var env = await Env.StartAsync(configure: services => services.Configure<DispatchOptions>(o => o.ReplicaName = "replica-7"));

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["n1", "n2"], reconcileFirst: ["n1"]), CancellationToken.None));

        Assert.Equal(["lookup", "lookup", "assign"], result.Calls.Select(c => c.Endpoint));
        Assert.All(result.Calls, c => Assert.Equal("replica-7", c.Replica));
    }

    [Fact]
    public async Task A_429_with_Retry_After_2_keeps_both_gate_users_from_calling_before_2_seconds()
    {
        await using var env = await Env.StartAsync();
        await using var second = await env.StartReplicaAsync();
        env.Script(new ScriptedFault { Kind = FaultKind.RateLimited, RetryAfterSeconds = 2, RetryAfterMode = RetryAfterMode.Seconds });

        var first = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["a1", "a2"]), CancellationToken.None));
        Assert.All(first.Prospects, p => Assert.Equal(ProspectResultKind.Requeue, p.Kind));
        Assert.All(first.Prospects, p => Assert.False(p.ReconcileFirst));
        var call = Assert.Single(first.Calls);
        Assert.Equal((429, GongCallOutcomeClass.SafeToResend, 2.0), (call.HttpStatus, call.OutcomeClass, call.RetryAfterSeconds));
        var throttledAt = Assert.Single(env.Calls).Time;
        Assert.True(await second.State.GetBlockedUntilAsync(CancellationToken.None) >= throttledAt + TimeSpan.FromSeconds(2));

        var both = Task.WhenAll(
            env.Replica.Sender.SendAsync(GongReplica.Batch(["a1", "a2"]), CancellationToken.None),
            second.Sender.SendAsync(GongReplica.Batch(["b1"]), CancellationToken.None));
        var results = await env.Clock.DriveAsync(both);

        Assert.All(results.SelectMany(r => r.Prospects), p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        var later = env.Calls.Skip(1).ToList();
        Assert.Equal(2, later.Count);
        Assert.All(later, r => Assert.True(r.Time >= throttledAt + TimeSpan.FromSeconds(2), $"call at {r.Time:O}, 429 at {throttledAt:O}"));
    }

    [Fact]
    public async Task A_429_with_Retry_After_as_an_HTTP_date_blocks_until_that_date()
    {
        await using var env = await Env.StartAsync();
        var until = DateTimeOffset.FromUnixTimeSeconds(env.Clock.GetUtcNow().ToUnixTimeSeconds() + 7);
        env.Script(new ScriptedFault { Kind = FaultKind.RateLimited, RetryAfterHeader = until.ToString("r", CultureInfo.InvariantCulture) });

        var first = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["x"]), CancellationToken.None));
        var requeued = Assert.Single(first.Prospects);
        Assert.Equal(ProspectResultKind.Requeue, requeued.Kind);
        // The gate alone holds the work (issue 11): the prospect never carries the block as its own available_at.
        Assert.Null(requeued.NotBefore);
        Assert.Equal(until + TimeSpan.FromSeconds(1), await env.Replica.State.GetBlockedUntilAsync(CancellationToken.None));

        var second = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["x"]), CancellationToken.None));
        Assert.Equal(ProspectResultKind.Assigned, Assert.Single(second.Prospects).Kind);
        Assert.True(env.Calls[^1].Time >= until);
    }

    [Fact]
    public async Task A_429_without_Retry_After_blocks_the_gate_for_the_configured_backoff()
    {
        await using var env = await Env.StartAsync();
        env.Script(new ScriptedFault { Kind = FaultKind.RateLimited, RetryAfterMode = RetryAfterMode.None });

        var first = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["x"]), CancellationToken.None));
        var at = env.Clock.GetUtcNow();

        Assert.Null(Assert.Single(env.Calls).RetryAfter);
        Assert.Equal(ProspectResultKind.Requeue, Assert.Single(first.Prospects).Kind);
        Assert.Equal(5.0, Assert.Single(first.Calls).RetryAfterSeconds);
        var blocked = await env.Replica.State.GetBlockedUntilAsync(CancellationToken.None);
        Assert.NotNull(blocked);
        Assert.InRange(blocked.Value - at, TimeSpan.FromSeconds(5.5), TimeSpan.FromSeconds(6)); // 5 s backoff + 1 s margin

        var second = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["x"]), CancellationToken.None));
        Assert.Equal(ProspectResultKind.Assigned, Assert.Single(second.Prospects).Kind);
        var calls = env.Calls;
        Assert.True(calls[1].Time - calls[0].Time >= TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Five_429s_then_200_succeeds_without_using_an_attempt()
    {
        await using var env = await Env.StartAsync();
        env.Script([.. Enumerable.Range(0, 5).Select(_ => new ScriptedFault { Kind = FaultKind.RateLimited, RetryAfterSeconds = 1, RetryAfterMode = RetryAfterMode.Seconds })]);
        var batch = GongReplica.Batch(["p1", "p2", "p3"]);

        // As the dispatcher does: Requeue puts the prospects back; the next claim sends them again.
        BatchResult result;
        var sends = 0;
        do
        {
            sends++;
            result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(batch, CancellationToken.None));
            Assert.DoesNotContain(result.Prospects, p => p.Kind is ProspectResultKind.RetryLater or ProspectResultKind.Failed);
        }
        while (result.Prospects.Any(p => p.Kind == ProspectResultKind.Requeue) && sends < 10);

        Assert.Equal(6, sends);
        Assert.All(result.Prospects, p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        Assert.Equal([429, 429, 429, 429, 429, 200], env.Calls.Select(c => c.Status));
    }

    [Fact]
    public async Task A_500_after_the_server_committed_is_looked_up_only_once_the_call_is_settled_and_committed_ids_are_not_sent_again()
    {
        await using var env = await Env.StartAsync(settings: [new("Gong:AttemptTimeout", "00:00:10"), new("Gong:ReconcileDelay", "00:00:01")]);
        env.Script(new ScriptedFault { Kind = FaultKind.ErrorBeforeCommit, Status = 500 });
        var ids = GongReplica.Ids("c", 10);

        var unknown = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids), CancellationToken.None));
        // Gong committed part of the batch before it failed: six of the ten are in the flow.
        env.Simulator.State.AddAssignments(ids.Take(6).Select(id => new SeedAssignment { CrmProspectId = id, FlowId = Flow, OwnerEmail = GongReplica.Owner }));

        // No lookup while the call may still commit: one attempt, reconcile first, not before start + 10 s + 1 s.
        var assignStart = Assert.Single(unknown.Calls).StartedAt;
        Assert.All(unknown.Prospects, p => Assert.Equal(
            (ProspectResultKind.RetryLater, true, "OutcomeUnknown", (DateTimeOffset?)(assignStart + TimeSpan.FromSeconds(11))),
            (p.Kind, p.ReconcileFirst, p.ErrorCode, p.NotBefore)));
        Assert.Equal([("assign", 500)], env.Calls.Select(r => (r.Endpoint, r.Status)));

        env.Clock.Advance(TimeSpan.FromSeconds(11));
        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids, reconcileFirst: ids), CancellationToken.None));

        Assert.All(result.Prospects, p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        Assert.Equal(ids.Take(6).Order(), result.Prospects.Where(p => p.Reconciled).Select(p => p.CrmProspectId).Order());
        var calls = env.Calls;
        // The 4 found absent are looked up once more after ReconcileDelay (two answers agree) before the one resend.
        Assert.Equal(["assign", "lookup", "lookup", "assign"], calls.Select(r => r.Endpoint));
        Assert.Equal(ids.Skip(6), calls[2].Ids);
        Assert.Equal(ids.Skip(6), calls[3].Ids);
        Assert.True(calls[2].Time - calls[1].Time >= TimeSpan.FromSeconds(1), "the confirming lookup waits the read-after-write delay");
        Assert.Equal(
            [("lookup", GongCallOutcomeClass.Answered), ("lookup", GongCallOutcomeClass.Answered), ("assign", GongCallOutcomeClass.Answered)],
            result.Calls.Select(c => (c.Endpoint, c.OutcomeClass)));
        Assert.Equal(0, env.Simulator.State.GetStats().DuplicateAssignAttempts);
    }

    [Fact]
    public async Task The_server_commits_then_answers_after_the_attempt_timeout_exactly_one_assign_and_no_lookup_yet()
    {
        await using var env = await Env.StartAsync();
        env.Script(new ScriptedFault { Kind = FaultKind.TimeoutAfterCommit }); // answers after 150 s, beyond the 90 s attempt timeout
        var ids = GongReplica.Ids("t", 5);

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids), CancellationToken.None), TimeSpan.FromSeconds(1));

        Assert.All(result.Prospects, p => Assert.True(p is { Kind: ProspectResultKind.RetryLater, ReconcileFirst: true }));
        var seen = Assert.Single(env.Calls);
        Assert.Equal(("assign", true), (seen.Endpoint, seen.Committed));
        var assign = result.Calls[0];
        Assert.Equal((GongCallOutcomeClass.OutcomeUnknown, (int?)null), (assign.OutcomeClass, assign.HttpStatus));
        Assert.True(assign.DurationMs >= 90_000, $"timed out after {assign.DurationMs} ms");
        Assert.All(result.Prospects, p => Assert.Equal(assign.StartedAt + TimeSpan.FromSeconds(91), p.NotBefore));
    }

    [Fact]
    public async Task A_resend_answered_already_in_this_flow_is_confirmed_by_a_lookup_and_recorded_Assigned()
    {
        // Gong's read side lags behind both lookups: they say absent, the resend meets our own first call's instance,
        // and Gong's read side catches up before the confirming lookup. Gong keeps its own clock here, so that it can
        // jump past the lag without the worker's timers (attempt timeout, body read) seeing an hour pass.
        var lag = TimeSpan.FromHours(1);
        var gongClock = FakeClock.Create();
        await using var env = await Env.StartAsync(
            simulator: o => o.LookupVisibilityDelayMs = (int)lag.TotalMilliseconds,
            simulatorClock: gongClock,
            settings: [new("Gong:ReconcileDelay", "00:00:00.100")]);
        env.Simulator.State.AddAssignments([new SeedAssignment { CrmProspectId = "mine", FlowId = Flow, OwnerEmail = GongReplica.Owner }]);

        var sending = env.Replica.Sender.SendAsync(GongReplica.Batch(["mine", "new"], reconcileFirst: ["mine"]), CancellationToken.None);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        var caughtUp = false;
        while (!sending.IsCompleted && DateTime.UtcNow < deadline)
        {
            await Task.WhenAny(sending, Task.Delay(5));
            if (!caughtUp && env.Calls.Any(c => c.Endpoint == "assign"))
            {
                // Checked before every step: the confirming lookup, a gate slot (333 ms) after the resend, comes later.
                gongClock.Advance(lag);
                caughtUp = true;
            }

            env.Clock.Advance(TimeSpan.FromMilliseconds(20));
        }

        var result = await sending.WaitAsync(TimeSpan.FromSeconds(1));
        Assert.Equal(
            [("lookup", 0, 0), ("lookup", 0, 0), ("assign", 1, 1), ("lookup", 1, 0)],
            env.Calls.Select(c => (c.Endpoint, c.Assigned, c.NotAssigned)));
        var mine = result.Prospects.Single(p => p.CrmProspectId == "mine");
        Assert.True(mine is { Kind: ProspectResultKind.Assigned, Reconciled: true }, mine.ToString());
        Assert.Equal(Assert.Single(env.Simulator.State.FindOpenInstances(["mine"])).FlowInstanceId, mine.FlowInstanceId);
        Assert.Equal(ProspectResultKind.Assigned, result.Prospects.Single(p => p.CrmProspectId == "new").Kind);
    }

    [Fact]
    public async Task A_refused_connection_is_retried_by_the_pipeline_and_the_batch_is_sent()
    {
        var closedPort = FreePort(); // nothing listens here: the kernel refuses the connection
        var connects = 0;
        await using var env = await Env.StartAsync(configure: services => services.AddHttpClient<GongApiClient>()
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                ConnectCallback = async (context, ct) =>
                {
                    var port = Interlocked.Increment(ref connects) == 1 ? closedPort : context.DnsEndPoint.Port;
                    var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    try
                    {
                        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
                        return new NetworkStream(socket, ownsSocket: true);
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                },
            }));

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["r1", "r2"]), CancellationToken.None));

        Assert.True(connects >= 2);
        Assert.All(result.Prospects, p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        Assert.Equal("assign", Assert.Single(env.Calls).Endpoint);
        Assert.Equal(GongCallOutcomeClass.Answered, Assert.Single(result.Calls).OutcomeClass);
    }

    [Fact]
    public async Task Connection_refused_after_the_bounded_retries_requeues_without_using_an_attempt()
    {
        var closedPort = FreePort();
        await using var env = await Env.StartAsync(baseUrl: $"http://127.0.0.1:{closedPort}");

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["r1"]), CancellationToken.None));

        var prospect = Assert.Single(result.Prospects);
        Assert.Equal((ProspectResultKind.Requeue, false, "ConnectionFailed"), (prospect.Kind, prospect.ReconcileFirst, prospect.ErrorCode));
        Assert.Equal((GongCallOutcomeClass.SafeToResend, (int?)null), (Assert.Single(result.Calls).OutcomeClass, result.Calls[0].HttpStatus));
        Assert.Empty(env.Calls);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_400_for_batches_over_100_splits_the_batch_and_assigns_all(bool messageNamesTheLimit)
    {
        // Named ("at most 100 prospects"): the limit is learned and the ids go out in calls of 100. Unnamed (a one-off
        // "Malformed request"): halves isolate the cause, and both answered prove the limit.
        await using var env = await Env.StartAsync(simulator: o => o.Faults = messageNamesTheLimit
            ? new FaultOptions { BatchLimit = 100 }
            : new FaultOptions { Script = [new ScriptedFault { Kind = FaultKind.BadRequest }] });
        var ids = GongReplica.Ids("s", 200);

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids), CancellationToken.None));

        Assert.All(result.Prospects, p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        var calls = env.Calls;
        Assert.Equal([(200, 400), (100, 200), (100, 200)], calls.Select(r => (r.IdsCount, r.Status)));
        Assert.Equal(ids.Order(), calls.Skip(1).SelectMany(r => r.Ids).Order());
    }

    [Fact]
    public async Task A_400_caused_by_one_id_fails_that_id_and_assigns_the_rest()
    {
        await using var env = await Env.StartAsync(simulator: o => o.Faults = new FaultOptions { BadRequestIds = ["bad-id"] });
        var ids = GongReplica.Ids("g", 19).Append("bad-id").ToList();

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids), CancellationToken.None));

        var bad = Assert.Single(result.Prospects, p => p.CrmProspectId == "bad-id");
        Assert.Equal((ProspectResultKind.Failed, "BadRequest", "Malformed crmProspectsIds value: bad-id"), (bad.Kind, bad.ErrorCode, bad.ErrorMessage));
        Assert.Equal(19, result.Prospects.Count(p => p.Kind == ProspectResultKind.Assigned));
        Assert.Equal(0, env.Simulator.State.GetStats().CallsWithDuplicateIds);
    }

    [Fact]
    public async Task A_401_pauses_fails_nothing_and_resumes_when_Gong_accepts_again()
    {
        await using var env = await Env.StartAsync();
        env.Simulator.State.SetFaults(new FaultOptions { UnauthorizedUntil = env.Clock.GetUtcNow() + TimeSpan.FromDays(1) });
        Assert.Null(env.Replica.State.Pause);

        var refused = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["u1", "u2"]), CancellationToken.None));

        Assert.All(refused.Prospects, p => Assert.Equal(ProspectResultKind.Requeue, p.Kind));
        var pause = env.Replica.State.Pause;
        Assert.NotNull(pause);
        Assert.Contains("Unauthorized", pause.Reason, StringComparison.Ordinal);
        Assert.True(pause.NextProbeAt > env.Clock.GetUtcNow());
        Assert.Equal(GongCallOutcomeClass.RefusedForAll, Assert.Single(refused.Calls).OutcomeClass);

        // A call already under way when the pause began (started before NextProbeAt) is no probe: no step of backoff.
        var concurrent = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["u1", "u2"]), CancellationToken.None));
        Assert.Equal(pause.NextProbeAt, env.Replica.State.Pause!.NextProbeAt);
        Assert.All(concurrent.Prospects, p => Assert.Equal(ProspectResultKind.Requeue, p.Kind));

        env.Clock.Advance(pause.NextProbeAt - env.Clock.GetUtcNow());
        var again = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["u1", "u2"]), CancellationToken.None));
        Assert.True(env.Replica.State.Pause!.NextProbeAt > pause.NextProbeAt, "probe backoff grows");
        Assert.Equal(1, env.Replica.State.Pause!.RefusedProbes);
        Assert.All(again.Prospects, p => Assert.Equal(ProspectResultKind.Requeue, p.Kind));

        env.Simulator.State.SetFaults(new FaultOptions());
        var accepted = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["u1", "u2"]), CancellationToken.None));
        Assert.All(accepted.Prospects, p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        Assert.Null(env.Replica.State.Pause);
        Assert.Equal([401, 401, 401, 200], env.Calls.Select(c => c.Status));
    }

    [Theory]
    [InlineData(ForbiddenFlow, 403, "Forbidden")]
    [InlineData(MissingFlow, 404, "FlowNotFound")]
    public async Task A_403_or_404_fails_the_batch_with_Gongs_message(string flow, int status, string code)
    {
        await using var env = await Env.StartAsync();

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["f1", "f2", "f3"]) with { FlowId = flow }, CancellationToken.None));

        var seen = Assert.Single(env.Calls);
        Assert.Equal(status, seen.Status);
        Assert.All(result.Prospects, p => Assert.Equal((ProspectResultKind.Failed, code, seen.Error, seen.RequestId), (p.Kind, p.ErrorCode, p.ErrorMessage, p.GongRequestId)));
        Assert.Contains(flow, seen.Error, StringComparison.Ordinal);
        Assert.Equal(GongCallOutcomeClass.RefusedForBatch, Assert.Single(result.Calls).OutcomeClass);
    }

    [Fact]
    public async Task Ids_marked_ReconcileFirst_are_looked_up_before_any_assign()
    {
        await using var env = await Env.StartAsync();
        env.Simulator.State.AddAssignments(
        [
            new SeedAssignment { CrmProspectId = "done", FlowId = Flow, OwnerEmail = GongReplica.Owner },
            new SeedAssignment { CrmProspectId = "elsewhere", FlowId = "999" }, // in another flow: not ours, must be sent
        ]);

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(
            GongReplica.Batch(["done", "elsewhere", "fresh"], reconcileFirst: ["done", "elsewhere"]), CancellationToken.None));

        // "elsewhere" is found absent, so a second lookup confirms it before it is sent.
        var calls = env.Calls;
        Assert.Equal(["lookup", "lookup", "assign"], calls.Select(r => r.Endpoint));
        Assert.Equal(["done", "elsewhere"], calls[0].Ids);
        Assert.Equal(["elsewhere"], calls[1].Ids);
        Assert.Equal(["elsewhere", "fresh"], calls[2].Ids.Order());
        Assert.True(result.Prospects.Single(p => p.CrmProspectId == "done") is { Kind: ProspectResultKind.Assigned, Reconciled: true });
        Assert.All(result.Prospects, p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
    }

    [Fact]
    public async Task A_failed_lookup_requeues_with_ReconcileFirst_and_never_guesses_Assigned()
    {
        await using var env = await Env.StartAsync();
        env.Simulator.State.AddAssignments(new[] { "k1", "k2" }.Select(id => new SeedAssignment { CrmProspectId = id, FlowId = Flow }));
        env.Script(new ScriptedFault { Kind = FaultKind.ErrorBeforeCommit, Endpoint = SimulatorEndpoints.Lookup, Status = 500 });

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["k1", "k2"], reconcileFirst: ["k1", "k2"]), CancellationToken.None));

        Assert.All(result.Prospects, p => Assert.True(p is { Kind: ProspectResultKind.Requeue, ReconcileFirst: true, ErrorCode: "LookupFailed" }));
        Assert.Equal([("lookup", 500)], env.Calls.Select(c => (c.Endpoint, c.Status)));
    }

    [Fact]
    public async Task Exhausted_ids_are_only_looked_up_found_is_Assigned_absent_is_RetriesExhausted()
    {
        await using var env = await Env.StartAsync(settings: [new("Gong:ReconcileDelay", "00:00:00.100")]);
        env.Simulator.State.AddAssignments([new SeedAssignment { CrmProspectId = "got", FlowId = Flow, OwnerEmail = GongReplica.Owner }]);
        var batch = GongReplica.Batch(["got", "lost", "fresh"], reconcileFirst: ["got", "lost"]) with
        {
            Exhausted = new HashSet<string>(["got", "lost"], StringComparer.Ordinal),
        };

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(batch, CancellationToken.None));

        Assert.True(result.Prospects.Single(p => p.CrmProspectId == "got") is { Kind: ProspectResultKind.Assigned, Reconciled: true });
        Assert.True(result.Prospects.Single(p => p.CrmProspectId == "lost") is { Kind: ProspectResultKind.Failed, ErrorCode: "RetriesExhausted" });
        Assert.Equal(ProspectResultKind.Assigned, result.Prospects.Single(p => p.CrmProspectId == "fresh").Kind);
        Assert.Equal(["fresh"], Assert.Single(env.Calls, c => c.Endpoint == "assign").Ids);
    }

    [Theory]
    [InlineData("")]
    [InlineData("/")]
    public async Task The_base_URL_is_joined_without_doubled_slashes(string suffix)
    {
        await using var env = await Env.StartAsync(baseUrlSuffix: suffix);

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["j1"]), CancellationToken.None));

        // The simulator routes only /v2/flows/prospects/assign: a doubled slash would be a 404 (FlowNotFound).
        Assert.Equal(ProspectResultKind.Assigned, Assert.Single(result.Prospects).Kind);
        Assert.Equal(("assign", 200), (Assert.Single(env.Calls).Endpoint, env.Calls[0].Status));
    }

    [Fact]
    public async Task Two_gate_users_at_3_calls_per_second_for_10_seconds_never_start_more_than_3_in_any_second()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var simulator = await StartSimulatorAsync(TimeProvider.System);
        await using var first = await GongReplica.StartAsync(database.ConnectionString, BaseUrl(simulator), TimeProvider.System);
        await using var second = await GongReplica.StartAsync(database.ConnectionString, BaseUrl(simulator), TimeProvider.System);

        // Warm-up outside the measurement: the first request through a fresh Kestrel host and a fresh HttpClient
        // pipeline is delayed by JIT compilation, which would bunch it with the next ones at the simulator.
        await Task.WhenAll(Enumerable.Range(0, 3).SelectMany(lane => new[]
        {
            first.Sender.SendAsync(GongReplica.Batch([$"warm-a{lane}"]), CancellationToken.None),
            second.Sender.SendAsync(GongReplica.Batch([$"warm-b{lane}"]), CancellationToken.None),
        }));
        var warmUps = simulator.State.GetCalls();
        int warmCalls;
        await using (var db0 = database.CreateDbContext())
        {
            warmCalls = (await db0.RateGates.SingleAsync()).DayCallCount;
        }

        var end = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(10);
        var starts = new System.Collections.Concurrent.ConcurrentBag<DateTimeOffset>();

        // Each replica runs three concurrent senders, as a dispatcher with in-flight calls would.
        async Task Loop(GongReplica replica, int lane)
        {
            for (var i = 0; DateTimeOffset.UtcNow < end; i++)
            {
                var result = await replica.Sender.SendAsync(GongReplica.Batch([$"{replica.GetHashCode()}-{lane}-{i}"]), CancellationToken.None);
                foreach (var call in result.Calls)
                {
                    starts.Add(call.StartedAt);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 3).SelectMany(lane => new[] { Loop(first, lane), Loop(second, lane) }));

        var measured = simulator.State.GetCalls(afterSequence: warmUps.Count == 0 ? 0 : warmUps[^1].Sequence);
        Assert.All(measured, r => Assert.Equal(("assign", 200), (r.Endpoint, r.Status)));
        var clientStarts = starts.Order().ToList();
        var arrivals = measured.Select(r => r.Time).Order().ToList();
        Assert.True(clientStarts.Count >= 27, $"{clientStarts.Count} calls in 10 s: the gate should allow about 3/s"); // not starved
        Assert.True(MaxInAnySecond(clientStarts) <= 3, $"client starts: max {MaxInAnySecond(clientStarts)} in one second");
        Assert.True(MaxInAnySecond(arrivals) <= 3, $"arrivals at the simulator: max {MaxInAnySecond(arrivals)} in one second");
        Assert.Equal(clientStarts.Count, arrivals.Count);

        await using var db = database.CreateDbContext();
        var gate = await db.RateGates.SingleAsync();
        Assert.Equal(clientStarts.Count + warmCalls, gate.DayCallCount);
    }

    [Fact]
    public async Task Slots_taken_concurrently_by_two_gates_keep_3_per_second_and_the_spacing()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var simulator = await StartSimulatorAsync(TimeProvider.System);
        await using var first = await GongReplica.StartAsync(database.ConnectionString, BaseUrl(simulator), TimeProvider.System);
        await using var second = await GongReplica.StartAsync(database.ConnectionString, BaseUrl(simulator), TimeProvider.System);
        var slots = new System.Collections.Concurrent.ConcurrentBag<GateSlot>();
        var end = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(4);

        async Task Loop(GongReplica replica)
        {
            while (DateTimeOffset.UtcNow < end)
            {
                var slot = await replica.Gate.WaitForSlotAsync(CancellationToken.None);
                Assert.True(slot.Taken);
                slots.Add(slot);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 4).SelectMany(_ => new[] { Loop(first), Loop(second) }));

        // The schedule itself (independent of wake-up jitter): slots taken 1 s / 3 apart (a late caller may move its
        // slot later by at most half of that), and every 4th slot, as sent, at least 1 s + margin after.
        var margin = first.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<GongOptions>>().Value.RateWindowMargin;
        var takes = slots.Select(s => s.ScheduledAt - s.MovedBy).Order().ToList();
        var sorted = slots.Select(s => s.ScheduledAt).Order().ToList();
        Assert.True(sorted.Count >= 11, $"{sorted.Count} slots in 4 s");
        for (var i = 1; i < takes.Count; i++)
        {
            Assert.True(takes[i] - takes[i - 1] >= TimeSpan.FromMilliseconds(333), $"spacing {takes[i] - takes[i - 1]}");
        }

        Assert.All(slots, s => Assert.InRange(s.MovedBy, TimeSpan.Zero, TimeSpan.FromSeconds(0.5 / 3)));

        for (var i = 3; i < sorted.Count; i++)
        {
            Assert.True(sorted[i] - sorted[i - 3] >= TimeSpan.FromSeconds(1) + margin, $"window {sorted[i] - sorted[i - 3]}");
        }
    }

    [Fact]
    public async Task The_daily_budget_holds_calls_until_the_next_UTC_day()
    {
        await using var env = await Env.StartAsync(settings: [new("Gong:DailyCallLimit", "2")]);

        for (var i = 0; i < 2; i++)
        {
            var ok = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch([$"d{i}"]), CancellationToken.None));
            var okProspect = Assert.Single(ok.Prospects);
            Assert.True(okProspect.Kind == ProspectResultKind.Assigned, $"{okProspect.Kind} {okProspect.ErrorCode} {okProspect.ErrorMessage}");
        }

        var held = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["d2"]), CancellationToken.None));
        var prospect = Assert.Single(held.Prospects);
        var midnight = new DateTimeOffset(env.Clock.GetUtcNow().UtcDateTime.Date.AddDays(1), TimeSpan.Zero);
        Assert.Equal(ProspectResultKind.Requeue, prospect.Kind);
        Assert.Null(prospect.NotBefore);
        Assert.Equal(midnight, await env.Replica.State.GetBlockedUntilAsync(CancellationToken.None));
        Assert.Empty(held.Calls);
        Assert.Equal(2, env.Calls.Count);
    }

    private const string ForbiddenFlow = "1695493301223590403";
    private const string MissingFlow = "1695493301223590404";

    /// <summary>The simulator as the Gong client's tests use it: this client's credentials, the two refused flows; the
    /// rate limit is Gong's (3/s) on the system clock and off on a fake clock (the tests there script every 429).</summary>
    private static Task<RunningSimulator> StartSimulatorAsync(TimeProvider clock, Action<SimulatorOptions>? configure = null)
    {
        var options = new SimulatorOptions
        {
            AccessKey = "test-key",
            AccessKeySecret = "test-secret",
            MissingFlowIds = [MissingFlow],
            RateLimit = new RateLimitOptions { RequestsPerSecond = clock == TimeProvider.System ? 3 : 0, DailyCallLimit = 0 },
        };
        configure?.Invoke(options);
        options.Faults.ForbiddenFlowIds.Add(ForbiddenFlow);
        return GongSimulatorApp.StartAsync(options, timeProvider: clock);
    }

    private static string BaseUrl(RunningSimulator simulator) => simulator.BaseUrl.ToString().TrimEnd('/');

    private static int MaxInAnySecond(IReadOnlyList<DateTimeOffset> sorted)
    {
        var max = 0;
        for (int i = 0, j = 0; i < sorted.Count; i++)
        {
            while (sorted[i] - sorted[j] >= TimeSpan.FromSeconds(1))
            {
                j++;
            }

            max = Math.Max(max, i - j + 1);
        }

        return max;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A test database, the simulator and one replica sharing a fake clock (unless the simulator is given its own).</summary>
    private sealed class Env : IAsyncDisposable
    {
        private TestDatabase database = null!;
        private string baseUrl = null!;

        public Microsoft.Extensions.Time.Testing.FakeTimeProvider Clock { get; } = FakeClock.Create();

        public RunningSimulator Simulator { get; private set; } = null!;

        public GongReplica Replica { get; private set; } = null!;

        /// <summary>The calls that reached the simulator's Gong endpoints, in order.</summary>
        public IReadOnlyList<CallRecord> Calls => Simulator.State.GetCalls();

        public static async Task<Env> StartAsync(
            string? baseUrl = null,
            string baseUrlSuffix = "",
            Action<SimulatorOptions>? simulator = null,
            TimeProvider? simulatorClock = null,
            IEnumerable<KeyValuePair<string, string?>>? settings = null,
            Action<IServiceCollection>? configure = null)
        {
            var env = new Env();
            var services = await TestServices.GetAsync();
            env.database = await services.CreateDatabaseAsync();
            env.Simulator = await StartSimulatorAsync(simulatorClock ?? env.Clock, simulator);
            env.baseUrl = (baseUrl ?? BaseUrl(env.Simulator)) + baseUrlSuffix;
            env.Replica = await GongReplica.StartAsync(env.database.ConnectionString, env.baseUrl, env.Clock, settings, configure);
            return env;
        }

        /// <summary>The next calls meet these faults, in order (<see cref="FaultOptions.Script"/>).</summary>
        public void Script(params ScriptedFault[] faults)
        {
            var current = Simulator.State.Faults;
            current.Script = [.. faults];
            Simulator.State.SetFaults(current);
        }

        public Task<GongReplica> StartReplicaAsync() => GongReplica.StartAsync(database.ConnectionString, baseUrl, Clock);

        public async ValueTask DisposeAsync()
        {
            await Replica.DisposeAsync();
            await Simulator.DisposeAsync();
            await database.DisposeAsync();
        }
    }
}
