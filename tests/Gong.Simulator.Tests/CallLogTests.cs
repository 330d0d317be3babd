using System.Net.Http.Json;
using System.Text.Json;

namespace Gong.Simulator.Tests;

public sealed class CallLogTests
{
    [Fact]
    public async Task The_call_log_records_endpoint_flow_owner_ids_status_and_retry_after()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.RateLimit.RequestsPerSecond = 2);
        (await h.AssignAsync(["p-1", "p-2", "p-1"], owner: "Ann.Lee@example.com")).Dispose();
        (await h.LookupAsync("p-1")).Dispose();
        (await h.AssignAsync(["p-3"])).Dispose();
        using var client = h.Simulator.CreateClient(authenticated: false);

        var calls = await client.GetFromJsonAsync<JsonElement>("_sim/calls");
        var later = await client.GetFromJsonAsync<JsonElement>("_sim/calls?after=2&includeIds=false");

        Assert.Equal(3, calls.GetArrayLength());
        var assign = calls[0];
        Assert.Equal(1, assign.GetProperty("sequence").GetInt64());
        Assert.Equal("assign", assign.GetProperty("endpoint").GetString());
        Assert.Equal(SimulatorHarness.FlowId, assign.GetProperty("flowId").GetString());
        Assert.Equal("Ann.Lee@example.com", assign.GetProperty("ownerEmail").GetString());
        Assert.Equal(3, assign.GetProperty("idsCount").GetInt32());
        Assert.Equal(["p-1", "p-2", "p-1"], assign.GetProperty("ids").EnumerateArray().Select(i => i.GetString()));
        Assert.Equal(200, assign.GetProperty("status").GetInt32());
        Assert.Equal((2, 1), (assign.GetProperty("assigned").GetInt32(), assign.GetProperty("notAssigned").GetInt32()));
        Assert.Equal(h.Time.GetUtcNow(), assign.GetProperty("time").GetDateTimeOffset());
        Assert.Equal("lookup", calls[1].GetProperty("endpoint").GetString());
        var limited = Assert.Single(later.EnumerateArray());
        Assert.Equal((429, "1"), (limited.GetProperty("status").GetInt32(), limited.GetProperty("retryAfter").GetString()));
        Assert.Equal(0, limited.GetProperty("ids").GetArrayLength());
        Assert.Equal(1, limited.GetProperty("idsCount").GetInt32());
    }

    [Fact]
    public async Task Stats_count_calls_by_status_and_assignments()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.RateLimit.RequestsPerSecond = 2);
        await h.AssignJsonAsync(["p-1", "p-2"]);
        await h.AssignJsonAsync(["p-2", "p-2"]);
        (await h.AssignAsync(["p-3"])).Dispose();
        using var client = h.Simulator.CreateClient(authenticated: false);

        var stats = await client.GetFromJsonAsync<JsonElement>("_sim/stats");

        Assert.Equal(3, stats.GetProperty("totalCalls").GetInt32());
        Assert.Equal(2, stats.GetProperty("callsByStatus").GetProperty("200").GetInt32());
        Assert.Equal(1, stats.GetProperty("callsByStatus").GetProperty("429").GetInt32());
        Assert.Equal(3, stats.GetProperty("maxCallsInAnyOneSecond").GetInt32());
        Assert.Equal(2, stats.GetProperty("assignmentsCount").GetInt32());
        Assert.Equal(2, stats.GetProperty("duplicateAssignAttempts").GetInt32());
        Assert.Equal(1, stats.GetProperty("callsWithDuplicateIds").GetInt32());
        Assert.Equal(2, stats.GetProperty("largestAssignBatch").GetInt32());
    }

    [Fact]
    public async Task Seeding_through_the_admin_endpoint_makes_prospects_visible_to_lookup()
    {
        await using var h = await SimulatorHarness.StartAsync();
        using var client = h.Simulator.CreateClient(authenticated: false);

        using var seeded = await client.PostAsJsonAsync("_sim/assignments", new[] { new { crmProspectId = "s-1", flowId = "44", ownerEmail = "x@example.com" } });
        var lookup = await h.LookupJsonAsync("s-1");

        Assert.Equal(204, (int)seeded.StatusCode);
        Assert.Equal("44", Assert.Single(lookup.GetProperty("prospectsAssigned").EnumerateArray()).GetProperty("flowId").GetString());
        Assert.Equal(1, h.State.GetStats().SeededAssignmentsCount);
    }
}
