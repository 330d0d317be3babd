using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.Gong;

/// <summary>The Gong client against a stub on loopback and a real Postgres rate gate (issue 4's list, one test per case).</summary>
[Collection(SerialCollection.Name)]
public sealed class GongBatchSenderTests
{
    private static readonly string Flow = GongReplica.FlowId;

    [Fact]
    public async Task A_200_with_98_assigned_1_InvalidState_1_UnexpectedError_retries_only_the_last()
    {
        await using var env = await Env.StartAsync();
        env.Stub.OnAssign = r => Task.FromResult<IResult?>(Results.Json(env.Stub.Answer(r, id => id switch
        {
            "p099" => ("InvalidState", "Prospect is in an exclusive flow"),
            "p100" => ("UnexpectedError", "Try again"),
            _ => null,
        })));
        var ids = GongReplica.Ids("p", 100);

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids), CancellationToken.None));

        Assert.Equal(100, result.Prospects.Count);
        Assert.Equal(98, result.Prospects.Count(p => p.Kind == ProspectResultKind.Assigned && p.FlowInstanceId is not null));
        var invalid = Assert.Single(result.Prospects, p => p.Kind == ProspectResultKind.NotAssigned);
        Assert.Equal(("p099", "InvalidState", "Prospect is in an exclusive flow"), (invalid.CrmProspectId, invalid.ErrorCode, invalid.ErrorMessage));
        var retry = Assert.Single(result.Prospects, p => p.Kind == ProspectResultKind.RetryLater);
        Assert.Equal(("p100", "UnexpectedError"), (retry.CrmProspectId, retry.ErrorCode));
        Assert.False(retry.ReconcileFirst);

        var call = Assert.Single(result.Calls);
        Assert.Equal(("assign", 200, GongCallOutcomeClass.Answered, 100), (call.Endpoint, call.HttpStatus, call.OutcomeClass, call.ProspectCount));
        Assert.StartsWith("req-", call.GongRequestId, StringComparison.Ordinal);
        Assert.All(result.Prospects, p => Assert.Equal(call.GongRequestId, p.GongRequestId));

        // Gong's exact wire: names, one flow and owner, no duplicate, Basic auth.
        var sent = Assert.Single(env.Stub.Assigns);
        Assert.Equal(ids, sent.Ids);
        Assert.Equal((Flow, GongReplica.Owner), (sent.FlowId, sent.OwnerEmail));
        Assert.Contains("\"crmProspectsIds\"", sent.Body, StringComparison.Ordinal);
        Assert.Equal("Basic " + Convert.ToBase64String("test-key:test-secret"u8.ToArray()), sent.Authorization);
    }

    [Fact]
    public async Task A_prospect_absent_from_both_lists_is_Failed_MissingFromResponse()
    {
        await using var env = await Env.StartAsync();
        env.Stub.OnAssign = r => Task.FromResult<IResult?>(Results.Json(env.Stub.Answer(r, omit: new HashSet<string> { "ghost" })));

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["a", "ghost", "b"]), CancellationToken.None));

        var ghost = Assert.Single(result.Prospects, p => p.CrmProspectId == "ghost");
        Assert.Equal((ProspectResultKind.Failed, "MissingFromResponse"), (ghost.Kind, ghost.ErrorCode));
        Assert.All(result.Prospects.Where(p => p.CrmProspectId != "ghost"), p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
    }

    [Fact]
    public async Task A_429_with_Retry_After_2_keeps_both_gate_users_from_calling_before_2_seconds()
    {
        await using var env = await Env.StartAsync();
        await using var second = await env.StartReplicaAsync();
        var throttled = 0;
        env.Stub.OnAssign = _ => Task.FromResult(Interlocked.Increment(ref throttled) == 1
            ? GongStub.Error(429, "API request limit exceeded", new Dictionary<string, string> { ["Retry-After"] = "2" })
            : null);

        var first = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["a1", "a2"]), CancellationToken.None));
        Assert.All(first.Prospects, p => Assert.Equal(ProspectResultKind.Requeue, p.Kind));
        Assert.All(first.Prospects, p => Assert.False(p.ReconcileFirst));
        var call = Assert.Single(first.Calls);
        Assert.Equal((429, GongCallOutcomeClass.SafeToResend, 2.0), (call.HttpStatus, call.OutcomeClass, call.RetryAfterSeconds));
        var throttledAt = Assert.Single(env.Stub.Requests).ArrivedAt;
        Assert.True(await second.State.GetBlockedUntilAsync(CancellationToken.None) >= throttledAt + TimeSpan.FromSeconds(2));

        var both = Task.WhenAll(
            env.Replica.Sender.SendAsync(GongReplica.Batch(["a1", "a2"]), CancellationToken.None),
            second.Sender.SendAsync(GongReplica.Batch(["b1"]), CancellationToken.None));
        var results = await env.Clock.DriveAsync(both);

        Assert.All(results.SelectMany(r => r.Prospects), p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        var later = env.Stub.Requests.Skip(1).ToList();
        Assert.Equal(2, later.Count);
        Assert.All(later, r => Assert.True(r.ArrivedAt >= throttledAt + TimeSpan.FromSeconds(2), $"call at {r.ArrivedAt:O}, 429 at {throttledAt:O}"));
    }

    [Fact]
    public async Task A_429_with_Retry_After_as_an_HTTP_date_blocks_until_that_date()
    {
        await using var env = await Env.StartAsync();
        var until = DateTimeOffset.FromUnixTimeSeconds(env.Clock.GetUtcNow().ToUnixTimeSeconds() + 7);
        var throttled = 0;
        env.Stub.OnAssign = _ => Task.FromResult(Interlocked.Increment(ref throttled) == 1
            ? GongStub.Error(429, "limit", new Dictionary<string, string> { ["Retry-After"] = until.ToString("r", CultureInfo.InvariantCulture) })
            : null);

        var first = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["x"]), CancellationToken.None));
        var requeued = Assert.Single(first.Prospects);
        Assert.Equal(ProspectResultKind.Requeue, requeued.Kind);
        // The gate alone holds the work (issue 11): the prospect never carries the block as its own available_at.
        Assert.Null(requeued.NotBefore);
        Assert.Equal(until + TimeSpan.FromSeconds(1), await env.Replica.State.GetBlockedUntilAsync(CancellationToken.None));

        var second = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["x"]), CancellationToken.None));
        Assert.Equal(ProspectResultKind.Assigned, Assert.Single(second.Prospects).Kind);
        Assert.True(env.Stub.Requests.Last().ArrivedAt >= until);
    }

    [Fact]
    public async Task A_429_without_Retry_After_blocks_the_gate_for_the_configured_backoff()
    {
        await using var env = await Env.StartAsync();
        var throttled = 0;
        env.Stub.OnAssign = _ => Task.FromResult(Interlocked.Increment(ref throttled) == 1 ? GongStub.Error(429, "limit") : null);

        var first = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["x"]), CancellationToken.None));
        var at = env.Clock.GetUtcNow();

        Assert.Equal(ProspectResultKind.Requeue, Assert.Single(first.Prospects).Kind);
        Assert.Equal(5.0, Assert.Single(first.Calls).RetryAfterSeconds);
        var blocked = await env.Replica.State.GetBlockedUntilAsync(CancellationToken.None);
        Assert.NotNull(blocked);
        Assert.InRange(blocked.Value - at, TimeSpan.FromSeconds(5.5), TimeSpan.FromSeconds(6)); // 5 s backoff + 1 s margin

        var second = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["x"]), CancellationToken.None));
        Assert.Equal(ProspectResultKind.Assigned, Assert.Single(second.Prospects).Kind);
        var requests = env.Stub.Requests.ToList();
        Assert.True(requests[1].ArrivedAt - requests[0].ArrivedAt >= TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Five_429s_then_200_succeeds_without_using_an_attempt()
    {
        await using var env = await Env.StartAsync();
        var calls = 0;
        env.Stub.OnAssign = _ => Task.FromResult(Interlocked.Increment(ref calls) <= 5
            ? GongStub.Error(429, "limit", new Dictionary<string, string> { ["Retry-After"] = "1" })
            : null);
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
        Assert.Equal(6, env.Stub.Assigns.Count);
    }

    [Fact]
    public async Task A_500_after_the_server_committed_is_looked_up_only_once_the_call_is_settled_and_committed_ids_are_not_sent_again()
    {
        await using var env = await Env.StartAsync(settings: [new("Gong:AttemptTimeout", "00:00:10"), new("Gong:ReconcileDelay", "00:00:01")]);
        var calls = 0;
        env.Stub.OnAssign = r =>
        {
            if (Interlocked.Increment(ref calls) != 1)
            {
                return Task.FromResult<IResult?>(null);
            }

            env.Stub.Commit(r.FlowId!, r.Ids.Take(6)); // committed part of the batch, then failed
            return Task.FromResult<IResult?>(GongStub.Error(500, "Failed to complete the operation due to an unexpected error"));
        };
        var ids = GongReplica.Ids("c", 10);

        var unknown = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids), CancellationToken.None));

        // No lookup while the call may still commit: one attempt, reconcile first, not before start + 10 s + 1 s.
        var assignStart = Assert.Single(unknown.Calls).StartedAt;
        Assert.All(unknown.Prospects, p => Assert.Equal(
            (ProspectResultKind.RetryLater, true, "OutcomeUnknown", (DateTimeOffset?)(assignStart + TimeSpan.FromSeconds(11))),
            (p.Kind, p.ReconcileFirst, p.ErrorCode, p.NotBefore)));
        Assert.Equal(["assign"], env.Stub.Requests.Select(r => r.Endpoint));

        env.Clock.Advance(TimeSpan.FromSeconds(11));
        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids, reconcileFirst: ids), CancellationToken.None));

        Assert.All(result.Prospects, p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        Assert.Equal(ids.Take(6).Order(), result.Prospects.Where(p => p.Reconciled).Select(p => p.CrmProspectId).Order());
        var requests = env.Stub.Requests.ToList();
        // The 4 found absent are looked up once more after ReconcileDelay (two answers agree) before the one resend.
        Assert.Equal(["assign", "lookup", "lookup", "assign"], requests.Select(r => r.Endpoint));
        Assert.Equal(ids.Skip(6), requests[2].Ids);
        Assert.Equal(ids.Skip(6), requests[3].Ids);
        Assert.True(requests[2].ArrivedAt - requests[1].ArrivedAt >= TimeSpan.FromSeconds(1), "the confirming lookup waits the read-after-write delay");
        Assert.Equal(
            [("lookup", GongCallOutcomeClass.Answered), ("lookup", GongCallOutcomeClass.Answered), ("assign", GongCallOutcomeClass.Answered)],
            result.Calls.Select(c => (c.Endpoint, c.OutcomeClass)));
    }

    [Fact]
    public async Task The_server_commits_then_answers_after_the_attempt_timeout_exactly_one_assign_and_no_lookup_yet()
    {
        await using var env = await Env.StartAsync();
        using var release = new CancellationTokenSource();
        env.Stub.OnAssign = async r =>
        {
            env.Stub.Commit(r.FlowId!, r.Ids);
            try
            {
                await Task.Delay(Timeout.Infinite, release.Token);
            }
            catch (OperationCanceledException)
            {
            }

            return Results.Json(env.Stub.Answer(r));
        };
        var ids = GongReplica.Ids("t", 5);

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids), CancellationToken.None), TimeSpan.FromSeconds(1));
        await release.CancelAsync();

        Assert.All(result.Prospects, p => Assert.True(p is { Kind: ProspectResultKind.RetryLater, ReconcileFirst: true }));
        Assert.Equal(["assign"], env.Stub.Requests.Select(r => r.Endpoint));
        var assign = result.Calls[0];
        Assert.Equal((GongCallOutcomeClass.OutcomeUnknown, (int?)null), (assign.OutcomeClass, assign.HttpStatus));
        Assert.True(assign.DurationMs >= 90_000, $"timed out after {assign.DurationMs} ms");
        Assert.All(result.Prospects, p => Assert.Equal(assign.StartedAt + TimeSpan.FromSeconds(91), p.NotBefore));
    }

    [Fact]
    public async Task A_resend_answered_already_in_this_flow_is_confirmed_by_a_lookup_and_recorded_Assigned()
    {
        await using var env = await Env.StartAsync(settings: [new("Gong:ReconcileDelay", "00:00:00.100")]);
        // Gong's read side lags beyond both lookups: they say absent, the resend meets our own first call's instance.
        var lookups = 0;
        env.Stub.OnLookup = _ => Task.FromResult(Interlocked.Increment(ref lookups) <= 2 ? (IResult?)Results.Json(new { requestId = "lag", prospectsAssigned = Array.Empty<object>() }) : null);
        env.Stub.Commit(Flow, ["mine"]);

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["mine", "new"], reconcileFirst: ["mine"]), CancellationToken.None));

        var mine = result.Prospects.Single(p => p.CrmProspectId == "mine");
        Assert.True(mine is { Kind: ProspectResultKind.Assigned, Reconciled: true }, mine.ToString());
        Assert.Equal(env.Stub.Assigned[(Flow, "mine")], mine.FlowInstanceId);
        Assert.Equal(ProspectResultKind.Assigned, result.Prospects.Single(p => p.CrmProspectId == "new").Kind);
        Assert.Equal(["lookup", "lookup", "assign", "lookup"], env.Stub.Requests.Select(r => r.Endpoint));
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
        Assert.Single(env.Stub.Assigns);
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
    }

    [Fact]
    public async Task A_400_for_batches_over_100_splits_the_batch_and_assigns_all()
    {
        await using var env = await Env.StartAsync();
        env.Stub.OnAssign = r => Task.FromResult(r.Ids.Count > 100 ? GongStub.Error(400, "crmProspectsIds: at most 100 items") : null);
        var ids = GongReplica.Ids("s", 200);

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids), CancellationToken.None));

        Assert.All(result.Prospects, p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        Assert.Equal([200, 100, 100], env.Stub.Assigns.Select(r => r.Ids.Count));
        Assert.Equal(ids.Order(), env.Stub.Assigns.Skip(1).SelectMany(r => r.Ids).Order());
    }

    [Fact]
    public async Task A_400_caused_by_one_id_fails_that_id_and_assigns_the_rest()
    {
        await using var env = await Env.StartAsync();
        env.Stub.OnAssign = r => Task.FromResult(r.Ids.Contains("bad-id") ? GongStub.Error(400, "Invalid crmId <bad-id>") : null);
        var ids = GongReplica.Ids("g", 19).Append("bad-id").ToList();

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(ids), CancellationToken.None));

        var bad = Assert.Single(result.Prospects, p => p.CrmProspectId == "bad-id");
        Assert.Equal((ProspectResultKind.Failed, "BadRequest", "Invalid crmId <bad-id>"), (bad.Kind, bad.ErrorCode, bad.ErrorMessage));
        Assert.Equal(19, result.Prospects.Count(p => p.Kind == ProspectResultKind.Assigned));
        Assert.All(env.Stub.Assigns, r => Assert.Equal(r.Ids.Count, r.Ids.Distinct().Count()));
    }

    [Fact]
    public async Task A_401_pauses_fails_nothing_and_resumes_when_Gong_accepts_again()
    {
        await using var env = await Env.StartAsync();
        var refuse = true;
        env.Stub.OnAssign = _ => Task.FromResult(Volatile.Read(ref refuse) ? GongStub.Error(401, "Unauthorized: bad access key") : null);
        Assert.Null(env.Replica.State.Pause);

        var refused = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["u1", "u2"]), CancellationToken.None));

        Assert.All(refused.Prospects, p => Assert.Equal(ProspectResultKind.Requeue, p.Kind));
        var pause = env.Replica.State.Pause;
        Assert.NotNull(pause);
        Assert.Contains("bad access key", pause.Reason, StringComparison.Ordinal);
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

        Volatile.Write(ref refuse, false);
        var accepted = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["u1", "u2"]), CancellationToken.None));
        Assert.All(accepted.Prospects, p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
        Assert.Null(env.Replica.State.Pause);
    }

    [Theory]
    [InlineData(403, "Forbidden", "Missing scope api:flows:write")]
    [InlineData(404, "FlowNotFound", "Flow 1695493301223590792 not found")]
    public async Task A_403_or_404_fails_the_batch_with_Gongs_message(int status, string code, string message)
    {
        await using var env = await Env.StartAsync();
        env.Stub.OnAssign = _ => Task.FromResult<IResult?>(GongStub.Error(status, message));

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["f1", "f2", "f3"]), CancellationToken.None));

        Assert.All(result.Prospects, p => Assert.Equal((ProspectResultKind.Failed, code, message, "err-" + status), (p.Kind, p.ErrorCode, p.ErrorMessage, p.GongRequestId)));
        Assert.Equal(GongCallOutcomeClass.RefusedForBatch, Assert.Single(result.Calls).OutcomeClass);
    }

    [Fact]
    public async Task Ids_marked_ReconcileFirst_are_looked_up_before_any_assign()
    {
        await using var env = await Env.StartAsync();
        env.Stub.Commit(Flow, ["done"]);
        env.Stub.Commit("999", ["elsewhere"]); // in another flow: not ours, must be sent

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(
            GongReplica.Batch(["done", "elsewhere", "fresh"], reconcileFirst: ["done", "elsewhere"]), CancellationToken.None));

        // "elsewhere" is found absent, so a second lookup confirms it before it is sent.
        Assert.Equal(["lookup", "lookup", "assign"], env.Stub.Requests.Select(r => r.Endpoint));
        Assert.Equal(["done", "elsewhere"], env.Stub.Lookups[0].Ids);
        Assert.Equal(["elsewhere"], env.Stub.Lookups[1].Ids);
        Assert.Equal(["elsewhere", "fresh"], env.Stub.Assigns[0].Ids.Order());
        Assert.True(result.Prospects.Single(p => p.CrmProspectId == "done") is { Kind: ProspectResultKind.Assigned, Reconciled: true });
        Assert.All(result.Prospects, p => Assert.Equal(ProspectResultKind.Assigned, p.Kind));
    }

    [Fact]
    public async Task A_failed_lookup_requeues_with_ReconcileFirst_and_never_guesses_Assigned()
    {
        await using var env = await Env.StartAsync();
        env.Stub.Commit(Flow, ["k1", "k2"]);
        env.Stub.OnLookup = _ => Task.FromResult<IResult?>(GongStub.Error(500, "lookup broke"));

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["k1", "k2"], reconcileFirst: ["k1", "k2"]), CancellationToken.None));

        Assert.All(result.Prospects, p => Assert.True(p is { Kind: ProspectResultKind.Requeue, ReconcileFirst: true }));
        Assert.Empty(env.Stub.Assigns);
    }

    [Fact]
    public async Task Exhausted_ids_are_only_looked_up_found_is_Assigned_absent_is_RetriesExhausted()
    {
        await using var env = await Env.StartAsync(settings: [new("Gong:ReconcileDelay", "00:00:00.100")]);
        env.Stub.Commit(Flow, ["got"]);
        var batch = GongReplica.Batch(["got", "lost", "fresh"], reconcileFirst: ["got", "lost"]) with
        {
            Exhausted = new HashSet<string>(["got", "lost"], StringComparer.Ordinal),
        };

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(batch, CancellationToken.None));

        Assert.True(result.Prospects.Single(p => p.CrmProspectId == "got") is { Kind: ProspectResultKind.Assigned, Reconciled: true });
        Assert.True(result.Prospects.Single(p => p.CrmProspectId == "lost") is { Kind: ProspectResultKind.Failed, ErrorCode: "RetriesExhausted" });
        Assert.Equal(ProspectResultKind.Assigned, result.Prospects.Single(p => p.CrmProspectId == "fresh").Kind);
        Assert.Equal(["fresh"], Assert.Single(env.Stub.Assigns).Ids);
    }

    [Theory]
    [InlineData("")]
    [InlineData("/")]
    public async Task The_base_URL_is_joined_without_doubled_slashes(string suffix)
    {
        await using var env = await Env.StartAsync(baseUrlSuffix: suffix);

        var result = await env.Clock.DriveAsync(env.Replica.Sender.SendAsync(GongReplica.Batch(["j1"]), CancellationToken.None));

        Assert.Equal(ProspectResultKind.Assigned, Assert.Single(result.Prospects).Kind);
        Assert.Equal("/v2/flows/prospects/assign", Assert.Single(env.Stub.Requests).Path);
    }

    [Fact]
    public async Task Two_gate_users_at_3_calls_per_second_for_10_seconds_never_start_more_than_3_in_any_second()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var stub = await GongStub.StartAsync(TimeProvider.System);
        await using var first = await GongReplica.StartAsync(database.ConnectionString, stub.BaseUrl, TimeProvider.System);
        await using var second = await GongReplica.StartAsync(database.ConnectionString, stub.BaseUrl, TimeProvider.System);

        // Warm-up outside the measurement: the first request through a fresh Kestrel stub and a fresh HttpClient
        // pipeline is delayed by JIT compilation, which would bunch it with the next ones at the stub.
        await Task.WhenAll(Enumerable.Range(0, 3).SelectMany(lane => new[]
        {
            first.Sender.SendAsync(GongReplica.Batch([$"warm-a{lane}"]), CancellationToken.None),
            second.Sender.SendAsync(GongReplica.Batch([$"warm-b{lane}"]), CancellationToken.None),
        }));
        stub.Requests.Clear();
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

        Assert.All(stub.Requests, r => Assert.Equal("assign", r.Endpoint));
        var clientStarts = starts.Order().ToList();
        var arrivals = stub.Requests.Select(r => r.RealArrivedAt).Order().ToList();
        Assert.True(clientStarts.Count >= 27, $"{clientStarts.Count} calls in 10 s: the gate should allow about 3/s"); // not starved
        Assert.True(MaxInAnySecond(clientStarts) <= 3, $"client starts: max {MaxInAnySecond(clientStarts)} in one second");
        Assert.True(MaxInAnySecond(arrivals) <= 3, $"arrivals at the stub: max {MaxInAnySecond(arrivals)} in one second");
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
        await using var stub = await GongStub.StartAsync(TimeProvider.System);
        await using var first = await GongReplica.StartAsync(database.ConnectionString, stub.BaseUrl, TimeProvider.System);
        await using var second = await GongReplica.StartAsync(database.ConnectionString, stub.BaseUrl, TimeProvider.System);
        var slots = new System.Collections.Concurrent.ConcurrentBag<DateTimeOffset>();
        var end = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(4);

        async Task Loop(GongReplica replica)
        {
            while (DateTimeOffset.UtcNow < end)
            {
                var slot = await replica.Gate.WaitForSlotAsync(CancellationToken.None);
                Assert.True(slot.Taken);
                slots.Add(slot.ScheduledAt);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 4).SelectMany(_ => new[] { Loop(first), Loop(second) }));

        // The schedule itself (independent of wake-up jitter): every 4th slot at least 1 s + margin after.
        var margin = first.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<GongOptions>>().Value.RateWindowMargin;
        var sorted = slots.Order().ToList();
        Assert.True(sorted.Count >= 11, $"{sorted.Count} slots in 4 s");
        for (var i = 1; i < sorted.Count; i++)
        {
            Assert.True(sorted[i] - sorted[i - 1] >= TimeSpan.FromMilliseconds(333), $"spacing {sorted[i] - sorted[i - 1]}");
        }

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
    }

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

    /// <summary>A test database, a stub and one replica sharing a fake clock.</summary>
    private sealed class Env : IAsyncDisposable
    {
        private TestDatabase database = null!;
        private string baseUrl = null!;

        public Microsoft.Extensions.Time.Testing.FakeTimeProvider Clock { get; } = FakeClock.Create();

        public GongStub Stub { get; private set; } = null!;

        public GongReplica Replica { get; private set; } = null!;

        public static async Task<Env> StartAsync(
            string? baseUrl = null,
            string baseUrlSuffix = "",
            IEnumerable<KeyValuePair<string, string?>>? settings = null,
            Action<IServiceCollection>? configure = null)
        {
            var env = new Env();
            var services = await TestServices.GetAsync();
            env.database = await services.CreateDatabaseAsync();
            env.Stub = await GongStub.StartAsync(env.Clock);
            env.baseUrl = (baseUrl ?? env.Stub.BaseUrl) + baseUrlSuffix;
            env.Replica = await GongReplica.StartAsync(env.database.ConnectionString, env.baseUrl, env.Clock, settings, configure);
            return env;
        }

        public Task<GongReplica> StartReplicaAsync() => GongReplica.StartAsync(database.ConnectionString, baseUrl, Clock);

        public async ValueTask DisposeAsync()
        {
            await Replica.DisposeAsync();
            await Stub.DisposeAsync();
            await database.DisposeAsync();
        }
    }
}
