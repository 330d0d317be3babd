using Microsoft.EntityFrameworkCore;
using Worker.Contracts;
using Worker.Host.Operations.Redrive;
using Worker.IntegrationTests.EndToEnd;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.Operations;

/// <summary>The <c>redrive</c> subcommand against real Postgres, and a re-drive drained by the worker against the simulator to its event.</summary>
public sealed class RedriveTests(ITestOutputHelper testOutput)
{
    private const string Flow = "1695493301223591111";

    [Fact]
    public async Task Dry_run_counts_then_redrive_stores_one_request_per_original_and_repeating_it_adds_nothing()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        var now = DateTimeOffset.UtcNow;
        var longId = new string('r', 128);
        await Seed(database,
            Original(longId, now,
                ("a1", ProspectAssignmentStatus.Failed, "RetriesExhausted"),
                ("a2", ProspectAssignmentStatus.Failed, "RetriesExhausted"),
                ("a3", ProspectAssignmentStatus.NotAssigned, "InvalidState"),
                ("a4", ProspectAssignmentStatus.NotAssigned, "ProspectNotFound"),
                ("a5", ProspectAssignmentStatus.Assigned, null),
                ("a6", ProspectAssignmentStatus.Failed, "FlowNotFound")),
            Original("orig-b", now,
                ("b1", ProspectAssignmentStatus.Failed, "RetriesExhausted"),
                ("b2", ProspectAssignmentStatus.Rejected, "InvalidProspectId")));

        var selection = new RedriveSelection(null, Flow, ["RetriesExhausted"], ["InvalidState"], now.AddHours(-1), now.AddMinutes(1));
        var dry = await RunAsync(database, selection, dryRun: true);
        Assert.Contains($"{longId}\t{Flow}\tFailed\tRetriesExhausted\t2", dry);
        Assert.Contains($"{longId}\t{Flow}\tNotAssigned\tInvalidState\t1", dry);
        Assert.Contains($"orig-b\t{Flow}\tFailed\tRetriesExhausted\t1", dry);
        Assert.Contains("Selected: 4 prospects of 2 request(s).", dry);
        Assert.Contains("Dry run: nothing changed.", dry);
        await using (var db = database.CreateDbContext())
        {
            Assert.Equal(2, await db.AssignmentRequests.CountAsync());
            Assert.Equal(0, await db.ProspectAssignments.CountAsync(p => p.RedrivenByRequestId != null));
        }

        var real = await RunAsync(database, selection, dryRun: false);
        var derivedA = Redriver.DerivedRequestId(longId, 1);
        var derivedB = Redriver.DerivedRequestId("orig-b", 1);
        Assert.Matches("^redrive:1:[0-9a-f]{32}$", derivedA);
        Assert.True(derivedA.Length <= 128);
        Assert.Contains($"{derivedA} re-drives {longId}: 3 prospect(s)", real);
        Assert.Contains($"{derivedB} re-drives orig-b: 1 prospect(s)", real);
        await using (var db = database.CreateDbContext())
        {
            var a = await db.AssignmentRequests.AsNoTracking().Include(r => r.Prospects).SingleAsync(r => r.RequestId == derivedA);
            Assert.Equal(longId, a.RedriveOfRequestId);
            Assert.Null(a.Status);
            Assert.Equal(3, a.PendingCount);
            Assert.Equal(["a1", "a2", "a3"], a.Prospects.Select(p => p.CrmProspectId).Order(StringComparer.Ordinal));
            Assert.All(a.Prospects, p => Assert.Equal(ProspectAssignmentStatus.Pending, p.Status));
            Assert.All(a.Prospects, p => Assert.Equal(Flow, p.FlowId));
            Assert.Equal("Owner@Example.com", a.OwnerEmail);
            Assert.Equal("orig-b", (await db.AssignmentRequests.SingleAsync(r => r.RequestId == derivedB)).RedriveOfRequestId);
            var marked = await db.ProspectAssignments.Where(p => p.RedrivenByRequestId != null).Select(p => p.CrmProspectId).OrderBy(id => id).ToListAsync();
            Assert.Equal(["a1", "a2", "a3", "b1"], marked);
        }

        // The same re-drive again: everything it selects was re-driven, so nothing is added.
        var again = await RunAsync(database, selection, dryRun: false);
        Assert.Contains("Selected: 0 prospects", again);
        Assert.Contains("Re-drive requests stored: 0, prospects queued: 0.", again);
        await using (var db = database.CreateDbContext())
        {
            Assert.Equal(4, await db.AssignmentRequests.CountAsync());
            Assert.Equal(8 + 4, await db.ProspectAssignments.CountAsync());
        }

        // Another selection on the same original takes the next generation.
        var more = await RunAsync(database, new RedriveSelection(longId, null, ["FlowNotFound"], [], null, null), dryRun: false);
        Assert.Contains($"{Redriver.DerivedRequestId(longId, 2)} re-drives {longId}: 1 prospect(s)", more);
    }

    [Fact]
    public async Task Rows_marked_by_an_interrupted_run_are_stored_by_the_next_run()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        var now = DateTimeOffset.UtcNow;
        await Seed(database, Original("orig-c", now, ("c1", ProspectAssignmentStatus.Failed, "RetriesExhausted"), ("c2", ProspectAssignmentStatus.Failed, "RetriesExhausted")));
        var derived = Redriver.DerivedRequestId("orig-c", 1);
        await using (var db = database.CreateDbContext())
        {
            // What a run that stopped between its two steps leaves: rows marked, no request stored.
            await db.ProspectAssignments.ExecuteUpdateAsync(p => p.SetProperty(x => x.RedrivenByRequestId, derived));
        }

        var output = await RunAsync(database, new RedriveSelection(null, null, [], [], null, null), dryRun: false);
        Assert.Contains("Selected: 0 prospects", output);
        Assert.Contains($"{derived} re-drives orig-c: 2 prospect(s)", output);
        await using (var db = database.CreateDbContext())
        {
            Assert.Equal("orig-c", (await db.AssignmentRequests.SingleAsync(r => r.RequestId == derived)).RedriveOfRequestId);
        }

        Assert.Contains("Re-drive requests stored: 0", await RunAsync(database, new RedriveSelection(null, null, [], [], null, null), dryRun: false));
    }

    [Fact]
    public async Task A_redrive_is_drained_by_the_worker_against_the_simulator_to_one_event_for_its_requestId()
    {
        await using var world = await EndToEndWorld.StartAsync(output: testOutput);
        var now = DateTimeOffset.UtcNow;
        await Seed(world.Database, Original("orig-e2e", now,
            ("e1", ProspectAssignmentStatus.Failed, "RetriesExhausted"),
            ("e2", ProspectAssignmentStatus.Failed, "RetriesExhausted"),
            ("e3", ProspectAssignmentStatus.Assigned, null)));

        var output = await RunAsync(world.Database, new RedriveSelection("orig-e2e", null, [], [], null, null), dryRun: false);
        var derived = Redriver.DerivedRequestId("orig-e2e", 1);
        Assert.Contains($"{derived} re-drives orig-e2e: 2 prospect(s)", output);

        await world.WaitForEventsAsync([derived], TimeSpan.FromSeconds(90));
        var (message, rows) = await world.AssertEventMatchesTableAsync(derived);
        Assert.Equal(RequestStatus.Succeeded, message.Status);
        Assert.Equal(["e1", "e2"], message.Outcomes.Select(o => o.CrmProspectId).Order(StringComparer.Ordinal));
        Assert.All(rows, r => Assert.Equal(ProspectAssignmentStatus.Assigned, r.Status));
        Assert.Empty(world.Events.For("orig-e2e"));
        Assert.Equal(0, world.Simulator.State.GetStats().DuplicateOfApiAssignmentAttempts);

        // Running it again adds nothing and no second event comes.
        Assert.Contains("Re-drive requests stored: 0", await RunAsync(world.Database, new RedriveSelection("orig-e2e", null, [], [], null, null), dryRun: false));
        await using var db = world.Database.CreateDbContext();
        Assert.Equal(0, await db.ProspectAssignments.CountAsync(p => p.Status == ProspectAssignmentStatus.Pending || p.Status == ProspectAssignmentStatus.InFlight));
        Assert.Single(world.Events.For(derived));
    }

    [Fact]
    public async Task The_redrive_subcommand_parses_its_options_as_a_process_and_a_dry_run_changes_nothing()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        var now = DateTimeOffset.UtcNow;
        await Seed(database, Original("orig-p", now,
            ("p1", ProspectAssignmentStatus.Failed, "RetriesExhausted"),
            ("p2", ProspectAssignmentStatus.Failed, "FlowNotFound"),
            ("p3", ProspectAssignmentStatus.NotAssigned, "InvalidState")));
        var environment = new Dictionary<string, string> { ["ConnectionStrings__Postgres"] = database.ConnectionString };
        string[] selection =
        [
            "redrive", "--flow-id", Flow, "--error-code", "RetriesExhausted", "--not-assigned", "InvalidState",
            "--from", now.AddHours(-1).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
        ];

        var dry = await HostCommand.RunAsync([.. selection, "--dry-run"], environment, TimeSpan.FromMinutes(1));
        Assert.True(dry.ExitCode == 0, dry.Text);
        Assert.Contains("Selected: 2 prospects of 1 request(s).", dry.Lines);
        Assert.Contains("Dry run: nothing changed.", dry.Lines);
        await using (var db = database.CreateDbContext())
        {
            Assert.Equal(1, await db.AssignmentRequests.CountAsync());
        }

        var real = await HostCommand.RunAsync(selection, environment, TimeSpan.FromMinutes(1));
        Assert.True(real.ExitCode == 0, real.Text);
        Assert.Contains($"{Redriver.DerivedRequestId("orig-p", 1)} re-drives orig-p: 2 prospect(s)", real.Lines);

        var stray = await HostCommand.RunAsync(["redrive", "everything"], environment, TimeSpan.FromMinutes(1));
        Assert.Equal(2, stray.ExitCode);
    }

    private static async Task<string> RunAsync(TestDatabase database, RedriveSelection selection, bool dryRun)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await RedriveCommand.RunAsync(
            [$"--ConnectionStrings:Postgres={database.ConnectionString}", "--Logging:LogLevel:Default=Warning"], selection, dryRun, output, error, CancellationToken.None);
        Assert.True(exit == 0, $"exit {exit}: {error}\n{output}");
        return output.ToString();
    }

    private static AssignmentRequest Original(string requestId, DateTimeOffset now, params (string Id, ProspectAssignmentStatus Status, string? ErrorCode)[] prospects) => new()
    {
        RequestId = requestId, FlowId = Flow, OwnerEmail = "Owner@Example.com", OwnerEmailNormalized = "owner@example.com",
        ContentHash = new string('e', 64), ProspectCount = prospects.Length, ReceivedAt = now.AddMinutes(-30), CompletedAt = now.AddMinutes(-5),
        Status = RequestStatus.PartiallySucceeded,
        Prospects = [.. prospects.Select(p => new ProspectAssignment
        {
            CrmProspectId = p.Id, FlowId = Flow, OwnerEmail = "owner@example.com", Status = p.Status, ErrorCode = p.ErrorCode,
            ErrorMessage = p.ErrorCode is null ? null : "seeded", FlowInstanceId = p.Status == ProspectAssignmentStatus.Assigned ? "fi-" + p.Id : null,
            AvailableAt = now.AddMinutes(-30), CreatedAt = now.AddMinutes(-30), UpdatedAt = now.AddMinutes(-5), CompletedAt = now.AddMinutes(-5),
        })],
    };

    private static async Task Seed(TestDatabase database, params AssignmentRequest[] requests)
    {
        await using var db = database.CreateDbContext();
        db.AssignmentRequests.AddRange(requests);
        await db.SaveChangesAsync();
    }
}
