using System.Globalization;
using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using Worker.Contracts;
using Worker.IntegrationTests.Dispatch;
using Worker.Persistence.Entities;
using Xunit.Abstractions;

namespace Worker.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 11, items 3–5 under the real worker host and the simulator: a hostile Retry-After is clamped and the block is
/// lifted by the <c>gate</c> subcommand; a credentials outage costs one step of backoff, shared by every replica; unknown
/// outcomes are looked up only once the call is settled, also when Gong's read side lags longer than ReconcileDelay.
/// </summary>
public sealed class GongFaultPathTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    [Theory]
    [InlineData("2147483647")]
    [InlineData("Fri, 01 Jan 2094 00:00:00 GMT")]
    public async Task A_hostile_Retry_After_is_clamped_the_gate_alone_holds_the_work_and_gate_open_releases_it(string retryAfter)
    {
        const string flow = "1695493301223591101";
        var simulator = new SimulatorOptions
        {
            Faults = new FaultOptions { Script = [new ScriptedFault { Kind = FaultKind.RateLimited, RetryAfterHeader = retryAfter }] },
        };
        await using var world = await EndToEndWorld.StartAsync(simulator, output: output);
        var ids = EndToEndWorld.Ids("e2e-ra-", 250);
        await world.PublishAsync(new AssignProspectsToFlow("e2e-ra-1", flow, "owner.ra@example.com", ids));

        GongCall throttled = null!;
        await Poll.UntilAsync(async () => (throttled = (await world.GongCallsAsync()).FirstOrDefault(c => c.HttpStatus == 429)!) is not null, Deadline, "the 429 recorded");
        // The refused batch goes back to Pending (the other of the two calls may have been answered before the 429).
        await Poll.UntilAsync(
            async () => (await world.ProspectsAsync("e2e-ra-1")) is var rows && rows.All(p => p.Status != ProspectAssignmentStatus.InFlight)
                && rows.Count(p => p.Status == ProspectAssignmentStatus.Pending) >= throttled.ProspectCount,
            Deadline,
            "the refused batch back to Pending");

        // Clamped to Gong:MaxRetryAfter (25 h) + RetryAfterMargin (1 s), not 68 years.
        Assert.Equal(TimeSpan.FromHours(25).TotalSeconds, throttled.RetryAfterSeconds!.Value, 0.5);
        await using (var db = world.Database.CreateDbContext())
        {
            var gate = await db.RateGates.AsNoTracking().SingleAsync();
            var answeredAt = throttled.StartedAt.AddMilliseconds(throttled.DurationMs);
            Assert.InRange(gate.BlockedUntil!.Value - answeredAt, TimeSpan.FromHours(25), TimeSpan.FromHours(25) + TimeSpan.FromSeconds(5));
            Assert.Contains("clamped to Gong:MaxRetryAfter", gate.BlockedReason, StringComparison.Ordinal);
        }

        // The prospects do not carry the block: the gate alone holds them.
        var held = (await world.ProspectsAsync("e2e-ra-1")).Where(p => p.Status == ProspectAssignmentStatus.Pending).ToList();
        Assert.All(held, p => Assert.True(p.AvailableAt < DateTimeOffset.UtcNow.AddMinutes(1), $"{p.CrmProspectId} available_at {p.AvailableAt:O}"));
        Assert.All(held, p => Assert.Equal(0, p.Attempts));
        var (http, status, description) = await world.ReadinessCheckAsync("gong");
        Assert.Equal((System.Net.HttpStatusCode.OK, "Healthy"), (http, status));
        Assert.Contains("blocked until", description, StringComparison.Ordinal);
        Assert.Contains("clamped", description, StringComparison.Ordinal);

        var (showExit, shown) = await RunWorkerCommandAsync(world, "gate");
        output.WriteLine(shown);
        Assert.True(showExit == 0, shown);
        Assert.Contains("Rate gate: blocked until", shown, StringComparison.Ordinal);

        var (openExit, opened) = await RunWorkerCommandAsync(world, "gate", "open", "--reason", "hostile Retry-After from a proxy", "--by", "ops.tester");
        output.WriteLine(opened);
        Assert.True(openExit == 0, opened);
        Assert.Contains("Rate gate: open", opened, StringComparison.Ordinal);

        await world.WaitForEventsAsync(["e2e-ra-1"], TimeSpan.FromSeconds(30));
        var (completed, rows) = await world.AssertEventMatchesTableAsync("e2e-ra-1");
        Assert.Equal(RequestStatus.Succeeded, completed.Status);
        Assert.All(rows, r => Assert.Equal((ProspectAssignmentStatus.Assigned, 0), (r.Status, r.Attempts)));
        await using (var db = world.Database.CreateDbContext())
        {
            var opening = await db.RateGateOpenings.AsNoTracking().SingleAsync();
            Assert.Equal(("ops.tester", "hostile Retry-After from a proxy"), (opening.OpenedBy, opening.Reason));
            Assert.NotNull(opening.BlockedUntil);
            Assert.Contains("429", opening.BlockedReason, StringComparison.Ordinal);
        }

        Assert.Equal("Healthy", (await world.ReadinessCheckAsync("gong")).Status);
        Assert.Equal(250, world.Simulator.State.GetStats().AssignmentsCount);
        await world.AssertCleanAsync(["e2e-ra-1"]);
    }

    [Fact]
    public async Task Unknown_outcomes_with_a_read_lag_longer_than_ReconcileDelay_are_looked_up_once_settled_and_never_sent_twice()
    {
        // Gong's read side lags its write side by 4 s, far beyond ReconcileDelay (0.2 s); three assigns commit and then
        // answer 500, drop the connection, answer 502.
        var simulator = new SimulatorOptions
        {
            LookupVisibilityDelayMs = 4000,
            Faults = new FaultOptions
            {
                Script =
                [
                    new ScriptedFault { Kind = FaultKind.ErrorAfterCommit, Status = 500 },
                    new ScriptedFault { Kind = FaultKind.ResetAfterCommit },
                    new ScriptedFault { Kind = FaultKind.ErrorAfterCommit, Status = 502 },
                ],
            },
        };
        await using var world = await EndToEndWorld.StartAsync(simulator, ["--Gong:AttemptTimeout=00:00:06"], output: output);
        string[] requestIds = ["e2e-lag-0", "e2e-lag-1", "e2e-lag-2"];
        foreach (var (requestId, i) in requestIds.Select((r, i) => (r, i)))
        {
            await world.PublishAsync(new AssignProspectsToFlow(requestId, $"169549330122359120{i}", "owner.lag@example.com", EndToEndWorld.Ids($"e2e-lag{i}-", 200)));
        }

        await world.WaitForEventsAsync(requestIds, Deadline);

        foreach (var requestId in requestIds)
        {
            var (completed, rows) = await world.AssertEventMatchesTableAsync(requestId);
            Assert.Equal(RequestStatus.Succeeded, completed.Status);
            Assert.All(rows, r => Assert.Equal((ProspectAssignmentStatus.Assigned, true, 1), (r.Status, r.Reconciled, r.Attempts)));
        }

        var calls = world.Simulator.State.GetCalls();
        var assigns = calls.Where(c => c.Endpoint == SimulatorEndpoints.Assign).ToList();
        Assert.Equal(3, assigns.Count);
        Assert.All(assigns, a => Assert.True(a.Committed && a.Fault is not null, $"{a.Fault} committed {a.Committed}"));
        Assert.Equal(600, assigns.SelectMany(c => c.Ids).Distinct().Count());
        // No lookup of a batch before its call could no longer commit (start + AttemptTimeout + ReconcileDelay), and
        // every lookup came after Gong's read side showed the commit (so none found a prospect absent).
        var gongCalls = await world.GongCallsAsync();
        Assert.Equal(3, gongCalls.Count(c => c.Endpoint == "lookup"));
        foreach (var lookup in gongCalls.Where(c => c.Endpoint == "lookup"))
        {
            var assign = gongCalls.Single(c => c.Endpoint == "assign" && c.FlowId == lookup.FlowId);
            Assert.True(lookup.StartedAt - assign.StartedAt >= TimeSpan.FromSeconds(6.2), $"lookup {(lookup.StartedAt - assign.StartedAt).TotalSeconds:0.00} s after its assign");
        }

        Assert.All(calls.Where(c => c.Endpoint == SimulatorEndpoints.Lookup), l => Assert.Equal(200, l.Assigned));

        var stats = world.Simulator.State.GetStats();
        Assert.Equal(600, stats.AssignmentsCount);
        Assert.Equal(0, stats.DuplicateAssignAttempts);
        await world.AssertCleanAsync(requestIds);
    }

    [Fact]
    public async Task A_credentials_outage_with_eight_calls_in_flight_is_one_step_of_backoff_shared_by_every_replica()
    {
        await using var world = await EndToEndWorld.StartAsync(
            settings: ["--Gong:UnauthorizedProbeDelay=00:00:01", "--Gong:UnauthorizedMaxProbeDelay=00:01:00", "--Dispatch:ReplicaName=first"], output: output);
        world.Simulator.State.SetFaults(new FaultOptions { UnauthorizedForSeconds = 4 });
        var outageEnds = world.Simulator.State.Faults.UnauthorizedUntil!.Value;
        var requestIds = Enumerable.Range(0, 8).Select(i => $"e2e-cred-{i}").ToArray();
        foreach (var (requestId, i) in requestIds.Select((r, i) => (r, i)))
        {
            await world.PublishAsync(new AssignProspectsToFlow(requestId, $"169549330122359140{i}", "owner.cred@example.com", EndToEndWorld.Ids($"e2e-cred{i}-", 200)));
        }

        // The pause lives in Postgres: a replica that never saw a 401 reports it at once and holds back too.
        await Poll.UntilAsync(async () =>
        {
            await using var db = world.Database.CreateDbContext();
            return await db.GongCredentialsPauses.AnyAsync(p => p.PausedSince != null);
        }, Deadline, "the shared credentials pause");
        using var second = await world.StartReplicaAsync("--Dispatch:ReplicaName=second");
        // (Its bus may still be starting, so only the gong entry is looked at.)
        var (_, status, description) = await EndToEndWorld.ReadinessCheckAsync(second, "gong");
        Assert.True(status == "Degraded", $"second replica: {status} {description}");
        Assert.Contains("401", description, StringComparison.Ordinal);

        await world.WaitForEventsAsync(requestIds, Deadline);

        var calls = world.Simulator.State.GetCalls();
        var refused = calls.Where(c => c.Status == 401).ToList();
        var firstAccepted = calls.Where(c => c.Status == 200).Min(c => c.Time);
        output.WriteLine($"{refused.Count} calls refused; first accepted {(firstAccepted - outageEnds).TotalSeconds:0.00} s after the outage ended");
        // Eight concurrent 401s are one step: probes after 1 s and 2 s more; the first one after the outage is accepted
        // within the following 4 s step (not after 2^7 s, capped at a minute, as when every answer counted).
        Assert.True(firstAccepted - outageEnds <= TimeSpan.FromSeconds(6), $"first accepted call {(firstAccepted - outageEnds).TotalSeconds:0.00} s after the outage");
        await using (var db = world.Database.CreateDbContext())
        {
            var pause = await db.GongCredentialsPauses.AsNoTracking().SingleAsync();
            Assert.Null(pause.PausedSince);
            Assert.All(await db.ProspectAssignments.AsNoTracking().ToListAsync(), r => Assert.Equal((ProspectAssignmentStatus.Assigned, 0), (r.Status, r.Attempts)));
        }

        Assert.Equal("Healthy", (await EndToEndWorld.ReadinessCheckAsync(second, "gong")).Status);
        Assert.Equal(1600, world.Simulator.State.GetStats().AssignmentsCount);
        await world.AssertCleanAsync(requestIds);
    }

    /// <summary>Runs <c>dotnet Worker.Host.dll &lt;args&gt;</c> against the world's database, as an operator would.</summary>
    internal static async Task<(int ExitCode, string Output)> RunWorkerCommandAsync(EndToEndWorld world, params string[] args)
    {
        var run = await Operations.HostCommand.RunAsync(args, new Dictionary<string, string> { ["ConnectionStrings__Postgres"] = world.Database.ConnectionString }, TimeSpan.FromSeconds(60));
        return (run.ExitCode, run.Text);
    }
}
