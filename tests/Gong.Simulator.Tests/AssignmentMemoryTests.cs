namespace Gong.Simulator.Tests;

public sealed class AssignmentMemoryTests
{
    [Fact]
    public async Task Re_adding_to_the_same_flow_gives_InvalidState_and_counts_a_duplicate()
    {
        await using var h = await SimulatorHarness.StartAsync();
        var first = await h.AssignJsonAsync(["p-1", "p-2"]);

        var second = await h.AssignJsonAsync(["p-1", "p-3"]);

        Assert.Equal(2, first.GetProperty("prospectsAssigned").GetArrayLength());
        Assert.Equal("p-3", Assert.Single(second.GetProperty("prospectsAssigned").EnumerateArray()).GetProperty("crmProspectId").GetString());
        var refused = Assert.Single(second.GetProperty("prospectsNotAssigned").EnumerateArray());
        Assert.Equal("p-1", refused.GetProperty("crmProspectId").GetString());
        Assert.Equal("InvalidState", refused.GetProperty("errorCode").GetString());
        var stats = h.State.GetStats();
        Assert.Equal(3, stats.AssignmentsCount);
        Assert.Equal(1, stats.DuplicateAssignAttempts);
        Assert.Equal(1, stats.DuplicateOfApiAssignmentAttempts);
    }

    [Fact]
    public async Task A_prospect_in_an_exclusive_flow_cannot_join_other_flows()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.Flows.Add(new FlowDefinition { Id = "900", Exclusive = true }));
        var exclusive = await h.AssignJsonAsync(["p-1"], flowId: "900");

        var other = await h.AssignJsonAsync(["p-1", "p-2"], flowId: "901");

        Assert.True(exclusive.GetProperty("prospectsAssigned")[0].GetProperty("exclusive").GetBoolean());
        var refused = Assert.Single(other.GetProperty("prospectsNotAssigned").EnumerateArray());
        Assert.Equal(("p-1", "InvalidState"), (refused.GetProperty("crmProspectId").GetString(), refused.GetProperty("errorCode").GetString()));
        Assert.Contains("exclusive", refused.GetProperty("errorMessage").GetString(), StringComparison.Ordinal);
        Assert.Equal("p-2", Assert.Single(other.GetProperty("prospectsAssigned").EnumerateArray()).GetProperty("crmProspectId").GetString());
        Assert.Equal(0, h.State.GetStats().DuplicateAssignAttempts);
    }

    [Fact]
    public async Task Non_exclusive_flows_allow_several_instances_and_lookup_lists_them_all()
    {
        await using var h = await SimulatorHarness.StartAsync();
        await h.AssignJsonAsync(["p-1"], flowId: "800");
        await h.AssignJsonAsync(["p-1"], flowId: "801");

        var lookup = await h.LookupJsonAsync("p-1");

        Assert.Equal(["800", "801"], lookup.GetProperty("prospectsAssigned").EnumerateArray().Select(i => i.GetProperty("flowId").GetString()));
    }

    [Fact]
    public async Task Seeded_prospects_are_found_by_lookup_and_block_per_their_flow()
    {
        await using var h = await SimulatorHarness.StartAsync(o =>
        {
            o.Flows.Add(new FlowDefinition { Id = "700", Exclusive = true });
            o.SeedAssignments.Add(new SeedAssignment { CrmProspectId = "seeded-1", FlowId = "700" });
            o.SeedAssignments.Add(new SeedAssignment { CrmProspectId = "seeded-2", FlowId = SimulatorHarness.FlowId });
            o.SeedAssignments.Add(new SeedAssignment { CrmProspectId = "finished-3", FlowId = "700", Status = "Finished" });
        });

        var lookup = await h.LookupJsonAsync("seeded-1", "seeded-2", "finished-3");
        var assign = await h.AssignJsonAsync(["seeded-1", "seeded-2", "finished-3"]);

        Assert.Equal(["seeded-1", "seeded-2"], lookup.GetProperty("prospectsAssigned").EnumerateArray().Select(i => i.GetProperty("crmProspectId").GetString()));
        Assert.Equal(["seeded-1", "seeded-2"], assign.GetProperty("prospectsNotAssigned").EnumerateArray().Select(i => i.GetProperty("crmProspectId").GetString()));
        Assert.All(assign.GetProperty("prospectsNotAssigned").EnumerateArray(), i => Assert.Equal("InvalidState", i.GetProperty("errorCode").GetString()));
        Assert.Equal("finished-3", Assert.Single(assign.GetProperty("prospectsAssigned").EnumerateArray()).GetProperty("crmProspectId").GetString());
        var stats = h.State.GetStats();
        Assert.Equal((3, 1, 1, 0), (stats.SeededAssignmentsCount, stats.AssignmentsCount, stats.DuplicateAssignAttempts, stats.DuplicateOfApiAssignmentAttempts));
    }

    [Fact]
    public async Task Id_prefixes_give_InvalidArgument_UnexpectedError_and_a_transient_UnexpectedError()
    {
        await using var h = await SimulatorHarness.StartAsync();

        var first = await h.AssignJsonAsync(["invalid-arg-1", "unexpected-2", "flaky-3", "blocked-4"]);
        var second = await h.AssignJsonAsync(["unexpected-2", "flaky-3"]);

        Assert.Equal(
            ["InvalidArgument", "UnexpectedError", "UnexpectedError", "InvalidState"],
            first.GetProperty("prospectsNotAssigned").EnumerateArray().Select(i => i.GetProperty("errorCode").GetString()));
        Assert.Equal("unexpected-2", Assert.Single(second.GetProperty("prospectsNotAssigned").EnumerateArray()).GetProperty("crmProspectId").GetString());
        Assert.Equal("flaky-3", Assert.Single(second.GetProperty("prospectsAssigned").EnumerateArray()).GetProperty("crmProspectId").GetString());
    }

    [Fact]
    public async Task Lookup_hides_instances_younger_than_the_visibility_delay()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.LookupVisibilityDelayMs = 2_000);
        await h.AssignJsonAsync(["p-1"]);

        var early = await h.LookupJsonAsync("p-1");
        h.Time.Advance(TimeSpan.FromSeconds(2));
        var later = await h.LookupJsonAsync("p-1");

        Assert.Equal(0, early.GetProperty("prospectsAssigned").GetArrayLength());
        Assert.Equal(1, later.GetProperty("prospectsAssigned").GetArrayLength());
    }

    [Fact]
    public async Task Reset_forgets_assignments_and_calls_but_restores_seeds()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.SeedAssignments.Add(new SeedAssignment { CrmProspectId = "s-1", FlowId = "5" }));
        await h.AssignJsonAsync(["p-1"]);

        using var reset = await h.Client.PostAsync("_sim/reset", null);

        Assert.Equal(204, (int)reset.StatusCode);
        Assert.Empty(h.State.GetCalls());
        var lookup = await h.LookupJsonAsync("p-1", "s-1");
        Assert.Equal(["s-1"], lookup.GetProperty("prospectsAssigned").EnumerateArray().Select(i => i.GetProperty("crmProspectId").GetString()));
    }
}
