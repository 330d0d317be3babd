using System.Net;
using Gong.Simulator;
using Worker.Contracts;
using Worker.IntegrationTests.Dispatch;
using Worker.Persistence.Entities;

namespace Worker.IntegrationTests.EndToEnd;

/// <summary>
/// Gong misbehaving under the real worker host: answers lost after commit (reconciled, never assigned twice), 429s
/// with Retry-After (the gate waits, nothing fails) and a credentials outage (Degraded readiness, nothing fails).
/// </summary>
public sealed class GongFaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Errors_after_commit_are_reconciled_and_nothing_is_assigned_twice()
    {
        const string flow = "1695493301223590010";
        var simulator = new SimulatorOptions
        {
            Seed = 7,
            Faults = new FaultOptions
            {
                ErrorAfterCommitRate = 0.3,
                Script = [new ScriptedFault { Kind = FaultKind.ErrorAfterCommit, Status = 500 }],
            },
        };
        // The lookup waits until the unknown call can no longer commit (AttemptTimeout + ReconcileDelay after its start).
        await using var world = await EndToEndWorld.StartAsync(simulator, ["--Gong:AttemptTimeout=00:00:03"], output: output);
        var requestIds = Enumerable.Range(1, 5).Select(i => $"e2e-eac-{i}").ToArray();
        var all = new List<string>();
        foreach (var (requestId, i) in requestIds.Select((r, i) => (r, i)))
        {
            var ids = EndToEndWorld.Ids($"e2e-eac{i}-", 200);
            all.AddRange(ids);
            await world.PublishAsync(new AssignProspectsToFlow(requestId, flow, "owner.eac@example.com", ids));
        }

        await world.WaitForEventsAsync(requestIds, Deadline);

        var rows = new List<ProspectAssignment>();
        foreach (var requestId in requestIds)
        {
            var (completed, requestRows) = await world.AssertEventMatchesTableAsync(requestId);
            Assert.Equal(RequestStatus.Succeeded, completed.Status);
            rows.AddRange(requestRows);
        }

        Assert.All(rows, r => Assert.Equal(ProspectAssignmentStatus.Assigned, r.Status));
        var calls = world.Simulator.State.GetCalls();
        var faulted = calls.Where(c => c.Fault == nameof(FaultKind.ErrorAfterCommit)).ToList();
        Assert.True(faulted.Count >= 1, "at least the scripted ErrorAfterCommit happened");
        Assert.All(faulted, c => Assert.True(c.Committed));
        var lostAnswers = faulted.SelectMany(c => c.Ids).ToHashSet(StringComparer.Ordinal);
        // Prospects whose answer was lost were looked up and recorded from Gong's lookup, the rest from the answer.
        Assert.All(rows, r => Assert.Equal(lostAnswers.Contains(r.CrmProspectId), r.Reconciled));
        Assert.Contains(calls, c => c.Endpoint == SimulatorEndpoints.Lookup && c.Status == 200);

        var stats = world.Simulator.State.GetStats();
        Assert.Equal(1000, stats.AssignmentsCount);
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);
        Assert.Equal(0, stats.DuplicateAssignAttempts);
        Assert.Equal(1000, calls.Where(c => c.Endpoint == SimulatorEndpoints.Assign).SelectMany(c => c.Ids).Count());

        var gongCalls = await world.GongCallsAsync();
        Assert.Equal(faulted.Count, gongCalls.Count(c => c.Endpoint == "assign" && c.HttpStatus >= 500 && c.OutcomeClass == GongCallOutcomeClass.OutcomeUnknown));
        Assert.Equal(calls.Count(c => c.Endpoint == SimulatorEndpoints.Lookup), gongCalls.Count(c => c.Endpoint == "lookup"));
    }

    [Fact]
    public async Task A_timeout_after_commit_is_reconciled_not_resent()
    {
        const string flow = "1695493301223590011";
        var simulator = new SimulatorOptions { Faults = new FaultOptions { Script = [new ScriptedFault { Kind = FaultKind.TimeoutAfterCommit }] } };
        await using var world = await EndToEndWorld.StartAsync(simulator, ["--Gong:AttemptTimeout=00:00:02"], output: output);
        var ids = EndToEndWorld.Ids("e2e-tac-", 300);

        await world.PublishAsync(new AssignProspectsToFlow("e2e-tac-1", flow, "owner.tac@example.com", ids));
        await world.WaitForEventsAsync(["e2e-tac-1"], Deadline);

        var (completed, rows) = await world.AssertEventMatchesTableAsync("e2e-tac-1");
        Assert.Equal(RequestStatus.Succeeded, completed.Status);
        Assert.All(rows, r => Assert.Equal(ProspectAssignmentStatus.Assigned, r.Status));
        var calls = world.Simulator.State.GetCalls();
        var timedOut = Assert.Single(calls, c => c.Fault == nameof(FaultKind.TimeoutAfterCommit));
        Assert.True(timedOut.Committed);
        var late = timedOut.Ids.ToHashSet(StringComparer.Ordinal);
        Assert.All(rows, r => Assert.Equal(late.Contains(r.CrmProspectId), r.Reconciled));

        // Exactly one assign POST per batch: the timed-out one was looked up, never resent.
        var assigns = calls.Where(c => c.Endpoint == SimulatorEndpoints.Assign).ToList();
        Assert.Equal([100, 200], assigns.Select(c => c.IdsCount).Order());
        Assert.Contains(calls, c => c.Endpoint == SimulatorEndpoints.Lookup && c.Status == 200 && c.Assigned == timedOut.IdsCount);
        var stats = world.Simulator.State.GetStats();
        Assert.Equal(300, stats.AssignmentsCount);
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);

        var gongCalls = await world.GongCallsAsync();
        var unknown = Assert.Single(gongCalls, c => c.Endpoint == "assign" && c.OutcomeClass == GongCallOutcomeClass.OutcomeUnknown);
        Assert.Null(unknown.HttpStatus);
        Assert.Equal(timedOut.IdsCount, unknown.ProspectCount);
    }

    [Fact]
    public async Task Throttling_429_with_retry_after_holds_every_replica_back_then_everything_is_assigned()
    {
        var simulator = new SimulatorOptions
        {
            Faults = new FaultOptions
            {
                Script =
                [
                    new ScriptedFault { Kind = FaultKind.RateLimited, RetryAfterSeconds = 2 },
                    new ScriptedFault { Kind = FaultKind.RateLimited, RetryAfterSeconds = 2 },
                ],
            },
        };
        await using var world = await EndToEndWorld.StartAsync(simulator, output: output);
        string[] flows = ["1695493301223590021", "1695493301223590022", "1695493301223590023"];
        foreach (var (flow, i) in flows.Select((f, i) => (f, i)))
        {
            await world.PublishAsync(new AssignProspectsToFlow($"e2e-429-{i}", flow, "owner.rl@example.com", EndToEndWorld.Ids($"e2e-429-{i}-", 250)));
        }

        await world.WaitForEventsAsync(flows.Select((_, i) => $"e2e-429-{i}"), Deadline);

        foreach (var i in Enumerable.Range(0, flows.Length))
        {
            var (completed, rows) = await world.AssertEventMatchesTableAsync($"e2e-429-{i}");
            Assert.Equal(RequestStatus.Succeeded, completed.Status);
            Assert.All(rows, r => Assert.Equal((ProspectAssignmentStatus.Assigned, 0), (r.Status, r.Attempts)));
        }

        var stats = world.Simulator.State.GetStats();
        Assert.Equal(2, stats.RateLimitedCalls);
        Assert.Equal(750, stats.AssignmentsCount);
        Assert.Equal(0, stats.DuplicateAssignAttempts);

        // Every 429 is in gong_calls with its Retry-After, and no call started between its answer and Retry-After later.
        var gongCalls = await world.GongCallsAsync();
        var throttled = gongCalls.Where(c => c.HttpStatus == 429).ToList();
        Assert.Equal(2, throttled.Count);
        // retry_after_seconds is what was left of Retry-After: 2 when the row was written (a few ms less than 2).
        Assert.All(throttled, c => Assert.Equal(GongCallOutcomeClass.SafeToResend, c.OutcomeClass));
        Assert.All(throttled, c => Assert.InRange(c.RetryAfterSeconds!.Value, 1.5, 2.0));
        foreach (var refused in throttled)
        {
            var answeredAt = refused.StartedAt.AddMilliseconds(refused.DurationMs);
            var next = gongCalls.Where(c => c.StartedAt > answeredAt).ToList();
            Assert.NotEmpty(next);
            Assert.All(next, c => Assert.True(c.StartedAt >= answeredAt.AddSeconds(2), $"call {c.Id} started {(c.StartedAt - answeredAt).TotalMilliseconds:0} ms after a 429 with Retry-After: 2"));
        }
    }

    [Fact]
    public async Task A_401_period_shows_degraded_readiness_fails_nothing_and_resumes()
    {
        const string flow = "1695493301223590030";
        await using var world = await EndToEndWorld.StartAsync(
            settings: ["--Gong:UnauthorizedProbeDelay=00:00:00.500", "--Gong:UnauthorizedMaxProbeDelay=00:00:01"], output: output);
        Assert.Equal("Healthy", (await world.ReadinessCheckAsync("gong")).Status);
        world.Simulator.State.SetFaults(new FaultOptions { UnauthorizedForSeconds = 5 });
        var ids = EndToEndWorld.Ids("e2e-401-", 250);

        await world.PublishAsync(new AssignProspectsToFlow("e2e-401-1", flow, "owner.401@example.com", ids));
        (HttpStatusCode Http, string Status, string? Description) degraded = default;
        await Poll.UntilAsync(
            async () => (degraded = await world.ReadinessCheckAsync("gong")).Status == "Degraded",
            TimeSpan.FromSeconds(30),
            "gong readiness Degraded during the 401 period");
        Assert.Equal(HttpStatusCode.OK, degraded.Http);
        Assert.Contains("401", degraded.Description, StringComparison.Ordinal);
        var during = await world.ProspectsAsync("e2e-401-1");
        Assert.Equal(250, during.Count);
        Assert.All(during, r => Assert.True(r.Status is ProspectAssignmentStatus.Pending or ProspectAssignmentStatus.InFlight, $"{r.CrmProspectId} is {r.Status} during the pause"));
        Assert.Empty(world.Events.For("e2e-401-1"));

        await world.WaitForEventsAsync(["e2e-401-1"], Deadline);
        var (completed, rows) = await world.AssertEventMatchesTableAsync("e2e-401-1");
        Assert.Equal(RequestStatus.Succeeded, completed.Status);
        Assert.All(rows, r => Assert.Equal((ProspectAssignmentStatus.Assigned, 0), (r.Status, r.Attempts)));
        await Poll.UntilAsync(async () => (await world.ReadinessCheckAsync("gong")).Status == "Healthy", TimeSpan.FromSeconds(10), "gong readiness Healthy again");

        var calls = world.Simulator.State.GetCalls();
        Assert.Contains(calls, c => c.Status == 401);
        Assert.Equal(250, calls.Where(c => c.Status == 200).SelectMany(c => c.Ids).Count());
        var stats = world.Simulator.State.GetStats();
        Assert.Equal(250, stats.AssignmentsCount);
        Assert.Equal(0, stats.DuplicateAssignAttempts);
        var gongCalls = await world.GongCallsAsync();
        Assert.Equal(calls.Count(c => c.Status == 401), gongCalls.Count(c => c.HttpStatus == 401));
        Assert.All(gongCalls.Where(c => c.HttpStatus == 401), c => Assert.Equal(GongCallOutcomeClass.RefusedForAll, c.OutcomeClass));
    }
}
