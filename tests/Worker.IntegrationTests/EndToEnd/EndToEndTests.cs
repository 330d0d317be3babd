using Gong.Simulator;
using Worker.Contracts;
using Worker.Persistence.Entities;

namespace Worker.IntegrationTests.EndToEnd;

/// <summary>
/// The whole path with the real worker host: RabbitMQ in, Postgres, the Gong simulator, the result event out. Each
/// test checks the consumed events, the results table and the simulator's own record of the calls.
/// </summary>
public sealed class EndToEndTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    [Fact]
    public void The_worker_settings_file_is_the_one_in_the_test_output()
    {
        // Gong.Simulator is a web project referenced by this one: its appsettings.json must not replace the worker's.
        var text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "appsettings.json"));
        Assert.Contains("\"RabbitMq\"", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\"Simulator\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MassTransit_and_plain_json_requests_are_assigned_and_reported_on_the_result_exchange()
    {
        await using var world = await EndToEndWorld.StartAsync(output: output);
        const string flowA = "1695493301223590001";
        const string flowB = "1695493301223590002";
        var idsA = EndToEndWorld.Ids("e2e-a-", 450);
        var idsB = EndToEndWorld.Ids("e2e-b-", 7);

        await world.PublishAsync(new AssignProspectsToFlow("e2e-enveloped-1", flowA, "owner.a@example.com", idsA));
        await world.PublishPlainJsonAsync(EndToEndWorld.PlainJson("e2e-plain-1", flowB, "  Owner.B@Example.com ", idsB, extraField: true));
        await world.WaitForEventsAsync(["e2e-enveloped-1", "e2e-plain-1"], Deadline);

        var (eventA, rowsA) = await world.AssertEventMatchesTableAsync("e2e-enveloped-1");
        Assert.Equal(RequestStatus.Succeeded, eventA.Status);
        Assert.Equal("owner.a@example.com", eventA.FlowInstanceOwnerEmail);
        Assert.Equal(idsA.Order(StringComparer.Ordinal), eventA.Outcomes.Select(o => o.CrmProspectId).Order(StringComparer.Ordinal));
        Assert.All(eventA.Outcomes, o => Assert.Equal(ProspectStatus.Assigned, o.Status));
        Assert.All(eventA.Outcomes, o => Assert.Equal("Running", o.FlowInstanceStatus));
        Assert.All(rowsA, r => Assert.Equal(ProspectAssignmentStatus.Assigned, r.Status));
        Assert.All(rowsA, r => Assert.False(r.Reconciled));

        var (eventB, rowsB) = await world.AssertEventMatchesTableAsync("e2e-plain-1");
        Assert.Equal(RequestStatus.Succeeded, eventB.Status);
        Assert.Equal("owner.b@example.com", eventB.FlowInstanceOwnerEmail, ignoreCase: true);
        Assert.Equal(idsB, eventB.Outcomes.Select(o => o.CrmProspectId).Order(StringComparer.Ordinal));
        Assert.All(rowsB, r => Assert.Equal(ProspectAssignmentStatus.Assigned, r.Status));
        Assert.Empty(world.Events.Unreadable);

        // Gong calls: Σ⌈n/200⌉ = 3 + 1, each 200, nothing refused, nothing sent twice.
        var assigns = world.Simulator.State.GetCalls().Where(c => c.Endpoint == SimulatorEndpoints.Assign).ToList();
        Assert.All(assigns, c => Assert.Equal(200, c.Status));
        Assert.Equal([50, 200, 200], assigns.Where(c => c.FlowId == flowA).Select(c => c.IdsCount).Order());
        Assert.Equal([7], assigns.Where(c => c.FlowId == flowB).Select(c => c.IdsCount));
        Assert.All(assigns.Where(c => c.FlowId == flowB), c => Assert.Equal("owner.b@example.com", c.OwnerEmail, ignoreCase: true));
        Assert.Equal(idsA.Length + idsB.Length, assigns.SelectMany(c => c.Ids).Distinct(StringComparer.Ordinal).Count());
        var stats = world.Simulator.State.GetStats();
        Assert.Equal(4, stats.TotalCalls);
        Assert.Equal(457, stats.AssignmentsCount);
        Assert.Equal(0, stats.RateLimitedCalls);
        Assert.Equal(0, stats.DuplicateAssignAttempts);
        Assert.Equal(0, stats.CallsWithDuplicateIds);

        var calls = await world.GongCallsAsync();
        Assert.Equal(4, calls.Count);
        Assert.All(calls, c => Assert.Equal((200, GongCallOutcomeClass.Answered), (c.HttpStatus!.Value, c.OutcomeClass)));
        Assert.Equal(457, calls.Sum(c => c.ProspectCount));
        Assert.Equal(assigns.Select(c => c.RequestId).Order(StringComparer.Ordinal), calls.Select(c => c.GongRequestId!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Mixed_outcomes_exclusive_flow_retries_exhausted_invalid_id_and_invalid_request()
    {
        const string exclusiveFlow = "1695493301223599999";
        const string flow = "1695493301223590003";
        var seeded = EndToEndWorld.Ids("e2e-excl-", 3);
        var simulator = new SimulatorOptions
        {
            Flows = [new FlowDefinition { Id = exclusiveFlow, Name = "Exclusive nurture", Exclusive = true }],
            SeedAssignments = [.. seeded.Select(id => new SeedAssignment { CrmProspectId = id, FlowId = exclusiveFlow })],
        };
        await using var world = await EndToEndWorld.StartAsync(simulator, ["--Dispatch:MaxAttempts=3"], output: output);
        var good = EndToEndWorld.Ids("e2e-ok-", 10);
        string[] unexpected = ["unexpected-e2e-1", "unexpected-e2e-2"];
        const string invalidId = "bad\u0007id";
        string?[] ids = [.. good, .. seeded, .. unexpected, invalidId, good[0]];

        await world.PublishAsync(new AssignProspectsToFlow("e2e-mixed-1", flow, "owner.m@example.com", ids));
        await world.PublishAsync(new AssignProspectsToFlow("e2e-invalid-1", "12ab", "not-an-email", ["e2e-never-1", "e2e-never-2"]));
        await world.WaitForEventsAsync(["e2e-mixed-1", "e2e-invalid-1"], Deadline);

        var (mixed, rows) = await world.AssertEventMatchesTableAsync("e2e-mixed-1");
        Assert.Equal(RequestStatus.PartiallySucceeded, mixed.Status);
        Assert.Equal(16, mixed.Outcomes.Count);
        ProspectOutcome Outcome(string id) => mixed.Outcomes.Single(o => o.CrmProspectId == id);
        Assert.All(good, id => Assert.Equal(ProspectStatus.Assigned, Outcome(id).Status));
        Assert.All(seeded, id => Assert.Equal((ProspectStatus.NotAssigned, "InvalidState"), (Outcome(id).Status, Outcome(id).ErrorCode)));
        Assert.All(seeded, id => Assert.Contains(exclusiveFlow, Outcome(id).ErrorMessage, StringComparison.Ordinal));
        Assert.All(unexpected, id => Assert.Equal((ProspectStatus.Failed, "RetriesExhausted"), (Outcome(id).Status, Outcome(id).ErrorCode)));
        Assert.Equal((ProspectStatus.Rejected, "InvalidProspectId"), (Outcome(invalidId).Status, Outcome(invalidId).ErrorCode));
        Assert.All(rows.Where(r => unexpected.Contains(r.CrmProspectId)), r => Assert.Equal(3, r.Attempts));
        var request = await world.RequestAsync("e2e-mixed-1");
        Assert.Equal((16, 10, 3, 2, 1), (request.ProspectCount, request.AssignedCount, request.NotAssignedCount, request.FailedCount, request.RejectedCount));

        var (invalid, invalidRows) = await world.AssertEventMatchesTableAsync("e2e-invalid-1");
        Assert.Equal(RequestStatus.Rejected, invalid.Status);
        Assert.NotNull(invalid.Errors);
        Assert.Contains(invalid.Errors, e => e.Contains("flowId", StringComparison.Ordinal));
        Assert.Contains(invalid.Errors, e => e.Contains("flowInstanceOwnerEmail", StringComparison.Ordinal));
        Assert.All(invalid.Outcomes, o => Assert.Equal((ProspectStatus.Rejected, "RequestRejected"), (o.Status, o.ErrorCode)));
        Assert.Equal(2, invalidRows.Count);
        Assert.False(string.IsNullOrEmpty((await world.RequestAsync("e2e-invalid-1")).RejectionReason));

        // The simulator: every unexpected- id sent exactly MaxAttempts times, every other valid id once, rejected ids never.
        var assigns = world.Simulator.State.GetCalls().Where(c => c.Endpoint == SimulatorEndpoints.Assign).ToList();
        Assert.All(assigns, c => Assert.Equal((200, flow), (c.Status, c.FlowId!)));
        var sent = assigns.SelectMany(c => c.Ids).GroupBy(i => i, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        Assert.All(unexpected, id => Assert.Equal(3, sent[id]));
        Assert.All(good.Concat(seeded), id => Assert.Equal(1, sent[id]));
        Assert.Equal(good.Length + seeded.Length + unexpected.Length, sent.Count);
        var stats = world.Simulator.State.GetStats();
        Assert.Equal(10, stats.AssignmentsCount);
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);
        Assert.Equal(0, stats.CallsWithDuplicateIds);
        Assert.Equal(assigns.Count, (await world.GongCallsAsync()).Count(c => c.Endpoint == "assign"));
    }
}
