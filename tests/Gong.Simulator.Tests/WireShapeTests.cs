using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Gong.Simulator.Tests;

public sealed class WireShapeTests
{
    private static readonly string[] AssignedFields =
    [
        "flowId", "flowName", "crmProspectId", "flowInstanceId", "flowInstanceOwnerEmail", "flowInstanceOwnerFullName",
        "flowInstanceCreateDate", "flowInstanceStatus", "workspaceId", "exclusive",
    ];

    private static readonly string[] NotAssignedFields = ["flowId", "crmProspectId", "errorCode", "errorMessage"];

    [Fact]
    public async Task Assign_answers_with_gongs_field_names_and_value_shapes()
    {
        await using var h = await SimulatorHarness.StartAsync();

        var body = await h.AssignJsonAsync(["p-1", "p-2", "p-3", "p-4", "invalid-arg-5"]);

        Assert.Equal(["requestId", "prospectsAssigned", "prospectsNotAssigned"], body.EnumerateObject().Select(p => p.Name));
        Assert.Matches("^[0-9a-z]{19}$", body.GetProperty("requestId").GetString());
        var assigned = body.GetProperty("prospectsAssigned").EnumerateArray().ToList();
        Assert.Equal(["p-1", "p-2", "p-3", "p-4"], assigned.Select(a => a.GetProperty("crmProspectId").GetString()));
        foreach (var item in assigned)
        {
            Assert.Equal(AssignedFields, item.EnumerateObject().Select(p => p.Name));
            Assert.Equal(SimulatorHarness.FlowId, item.GetProperty("flowId").GetString());
            Assert.Equal(JsonValueKind.String, item.GetProperty("flowInstanceId").ValueKind);
            Assert.Matches("^[1-9][0-9]{18}$", item.GetProperty("flowInstanceId").GetString());
            Assert.Equal(SimulatorHarness.Owner, item.GetProperty("flowInstanceOwnerEmail").GetString());
            Assert.Equal("Jane Doe", item.GetProperty("flowInstanceOwnerFullName").GetString());
            Assert.Equal("Running", item.GetProperty("flowInstanceStatus").GetString());
            Assert.Equal(JsonValueKind.String, item.GetProperty("workspaceId").ValueKind);
            Assert.Equal(JsonValueKind.False, item.GetProperty("exclusive").ValueKind);
            var created = DateTimeOffset.Parse(item.GetProperty("flowInstanceCreateDate").GetString()!, CultureInfo.InvariantCulture);
            Assert.Equal(h.Time.GetUtcNow().UtcDateTime, created.UtcDateTime, TimeSpan.FromSeconds(1));
        }

        Assert.Equal(4, assigned.Select(a => a.GetProperty("flowInstanceId").GetString()).Distinct().Count());
        var dates = assigned.Select(a => a.GetProperty("flowInstanceCreateDate").GetString()!).ToList();
        Assert.Contains(dates, d => d.EndsWith('Z') && d.Split('.')[1].Length == "1234567Z".Length);
        Assert.Contains(dates, d => d.EndsWith("-03:00", StringComparison.Ordinal) && !d.Contains('.', StringComparison.Ordinal));
        Assert.Contains(dates, d => d.EndsWith("+05:30", StringComparison.Ordinal));

        var failure = Assert.Single(body.GetProperty("prospectsNotAssigned").EnumerateArray());
        Assert.Equal(NotAssignedFields, failure.EnumerateObject().Select(p => p.Name));
        Assert.Equal("invalid-arg-5", failure.GetProperty("crmProspectId").GetString());
        Assert.Equal("InvalidArgument", failure.GetProperty("errorCode").GetString());
        Assert.Equal("Invalid crmId <invalid-arg-5>", failure.GetProperty("errorMessage").GetString());
    }

    [Fact]
    public async Task Lookup_returns_open_instances_with_the_assign_item_shape()
    {
        await using var h = await SimulatorHarness.StartAsync();
        var assigned = await h.AssignJsonAsync(["p-1", "p-2"]);

        var body = await h.LookupJsonAsync("p-1", "never-assigned");

        Assert.Equal(["requestId", "prospectsAssigned"], body.EnumerateObject().Select(p => p.Name));
        var item = Assert.Single(body.GetProperty("prospectsAssigned").EnumerateArray());
        Assert.Equal(AssignedFields, item.EnumerateObject().Select(p => p.Name));
        Assert.Equal(assigned.GetProperty("prospectsAssigned")[0].GetRawText(), item.GetRawText());
    }

    [Fact]
    public async Task Error_bodies_carry_request_id_and_errors()
    {
        await using var h = await SimulatorHarness.StartAsync();

        // The worker's contract spells it crmProspectIds; Gong wants crmProspectsIds.
        using var wrongName = await h.Client.PostAsJsonAsync(
            "v2/flows/prospects/assign",
            new { crmProspectIds = new[] { "p-1" }, flowId = SimulatorHarness.FlowId, flowInstanceOwnerEmail = SimulatorHarness.Owner });
        using var notJson = await h.Client.PostAsync("v2/flows/prospects/assign", new StringContent("{oops", Encoding.UTF8, "application/json"));

        foreach (var response in new[] { wrongName, notJson })
        {
            Assert.Equal(400, (int)response.StatusCode);
            var error = await SimulatorHarness.ReadJsonAsync(response);
            Assert.Equal(["requestId", "errors"], error.EnumerateObject().Select(p => p.Name));
            Assert.NotEmpty(error.GetProperty("errors").EnumerateArray());
        }

        var message = (await SimulatorHarness.ReadJsonAsync(wrongName)).GetProperty("errors")[0].GetString();
        Assert.Contains("crmProspectsIds is required", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Accepts_basic_and_bearer_and_refuses_anything_else_with_401()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.BearerToken = "tok-123");
        using var anonymous = h.Simulator.CreateClient(authenticated: false);

        async Task<int> StatusWith(AuthenticationHeaderValue? auth)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v2/flows/prospects")
            {
                Content = JsonContent.Create(new { crmProspectsIds = new[] { "p-1" } }),
            };
            request.Headers.Authorization = auth;
            using var response = await anonymous.SendAsync(request);
            return (int)response.StatusCode;
        }

        Assert.Equal(200, await StatusWith(h.Simulator.BasicAuthorization));
        Assert.Equal(200, await StatusWith(new AuthenticationHeaderValue("Bearer", "tok-123")));
        Assert.Equal(401, await StatusWith(null));
        Assert.Equal(401, await StatusWith(new AuthenticationHeaderValue("Bearer", "wrong")));
        Assert.Equal(401, await StatusWith(new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("sim-access-key:wrong")))));
    }

    [Fact]
    public async Task Unknown_and_forbidden_flows_answer_404_and_403()
    {
        await using var h = await SimulatorHarness.StartAsync(o =>
        {
            o.AnyDigitsFlowExists = false;
            o.Flows.Add(new FlowDefinition { Id = "111", Name = "SDR Flow" });
            o.Flows.Add(new FlowDefinition { Id = "222" });
            o.Faults.ForbiddenFlowIds.Add("222");
        });

        using var known = await h.AssignAsync(["p-1"], flowId: "111");
        using var unknown = await h.AssignAsync(["p-1"], flowId: "333");
        using var forbidden = await h.AssignAsync(["p-1"], flowId: "222");

        Assert.Equal(200, (int)known.StatusCode);
        Assert.Equal("SDR Flow", (await SimulatorHarness.ReadJsonAsync(known)).GetProperty("prospectsAssigned")[0].GetProperty("flowName").GetString());
        Assert.Equal(404, (int)unknown.StatusCode);
        Assert.Contains("333", (await SimulatorHarness.ReadJsonAsync(unknown)).GetProperty("errors")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(403, (int)forbidden.StatusCode);
    }
}
