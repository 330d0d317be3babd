using Microsoft.EntityFrameworkCore;
using Worker.Host.Operations;
using Worker.Persistence.Entities;
using Worker.Testing;
using static Worker.IntegrationTests.Operations.HealthAndMetricsTests;

namespace Worker.IntegrationTests.Operations;

public sealed class StatusCommandTests
{
    [Fact]
    public async Task Status_prints_backlog_outcomes_calls_and_rate_gate_of_a_live_database()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        var now = DateTimeOffset.UtcNow;
        await using (var db = database.CreateDbContext())
        {
            var pending = Enumerable.Range(0, 3).Select(i => Prospect($"a{i}", ProspectAssignmentStatus.Pending, now.AddMinutes(-10))).ToList();
            pending.Add(Prospect("a-in-flight", ProspectAssignmentStatus.InFlight, now.AddMinutes(-2)));
            pending.Add(Prospect("b1", ProspectAssignmentStatus.Pending, now.AddMinutes(-2), flowId: "222", owner: "second.owner@example.org"));
            var done = new List<ProspectAssignment>
            {
                Final("d1", ProspectAssignmentStatus.Assigned, null, now.AddMinutes(-20)),
                Final("d2", ProspectAssignmentStatus.Assigned, null, now.AddMinutes(-15)),
                Final("d3", ProspectAssignmentStatus.NotAssigned, "InvalidState", now.AddMinutes(-15)),
                Final("d4", ProspectAssignmentStatus.Failed, "FlowNotFound", now.AddMinutes(-5)),
                Final("old", ProspectAssignmentStatus.Assigned, null, now.AddHours(-3)),
            };
            db.AssignmentRequests.Add(Request("status-1", pending.Concat(done).ToList(), now));
            db.GongCalls.AddRange(
                Call("assign", 200, 200, GongCallOutcomeClass.Answered, now.AddMinutes(-20)),
                Call("assign", 100, 200, GongCallOutcomeClass.Answered, now.AddMinutes(-10)),
                Call("assign", 150, 429, GongCallOutcomeClass.SafeToResend, now.AddMinutes(-9)),
                Call("lookup", 150, 200, GongCallOutcomeClass.Answered, now.AddMinutes(-8)),
                Call("assign", 200, 200, GongCallOutcomeClass.Answered, now.AddHours(-2)));
            db.OutboxMessages.Add(new OutboxMessage { Id = Guid.NewGuid(), MessageType = "x", Payload = "{}", CreatedAt = now.AddMinutes(-3), AvailableAt = now.AddMinutes(-3) });
            db.DispatchBatches.Add(new DispatchBatch
            {
                Id = Guid.NewGuid(), FlowId = "111", OwnerEmail = "owner@example.com", ProspectCount = 1, ClaimedBy = "replica-a",
                ClaimedAt = now.AddMinutes(-10), LeaseExpiresAt = now.AddMinutes(-5),
            });
            await db.SaveChangesAsync();
            await db.RateGates.Where(g => g.Id == 1).ExecuteUpdateAsync(g => g
                .SetProperty(x => x.BlockedUntil, now.AddMinutes(30))
                .SetProperty(x => x.BlockedReason, "429 Retry-After 1800")
                .SetProperty(x => x.Day, DateOnly.FromDateTime(now.UtcDateTime))
                .SetProperty(x => x.DayCallCount, 1234));
        }

        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await StatusCommand.RunAsync(
            [$"--ConnectionStrings:Postgres={database.ConnectionString}", "--Gong:DailyCallLimit=5000"], output, error, CancellationToken.None);

        var text = output.ToString();
        Assert.True(exit == 0, error.ToString());
        var lines = text.Split('\n');
        Assert.Contains(lines, l => Cells(l) is ["111", "o***@example.com", "3", "1", "10 min"]);
        Assert.Contains(lines, l => Cells(l) is ["222", "s***@example.org", "1", "0", "2 min"]);
        Assert.Contains(lines, l => Cells(l) is ["total", "2 groups", "4", "1", "10 min"]);
        Assert.Contains(lines, l => Cells(l) is ["Assigned", "-", "2"]);
        Assert.Contains(lines, l => Cells(l) is ["NotAssigned", "InvalidState", "1"]);
        Assert.Contains(lines, l => Cells(l) is ["Failed", "FlowNotFound", "1"]);
        Assert.Contains(lines, l => Cells(l) is ["total", "4"]);
        Assert.Contains(lines, l => Cells(l) is ["assign calls (last hour)", "3"]);
        Assert.Contains(lines, l => Cells(l) is ["assign calls per minute", "0.1"]);
        Assert.Contains(lines, l => Cells(l) is ["mean batch fill (prospects per assign)", "150.0"]);
        Assert.Contains(lines, l => Cells(l) is ["lookup calls (last hour)", "1"]);
        Assert.Contains(lines, l => Cells(l) is ["429 answers (last hour)", "1"]);
        Assert.Contains(lines, l => Cells(l) is ["calls today (UTC day)", "1,234 of 5,000"]);
        Assert.Contains(lines, l => Cells(l) is ["rate gate", var gate] && gate.StartsWith("blocked until", StringComparison.Ordinal) && gate.Contains("30 min left", StringComparison.Ordinal));
        Assert.Contains(lines, l => Cells(l) is ["outbox unpublished", "1 (oldest 3 min)"]);
        Assert.Contains(lines, l => Cells(l) is ["batches past their lease", "1"]);
        Assert.DoesNotContain("owner@example.com", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Status_shows_a_spent_daily_budget_as_closed_until_midnight_with_the_reason()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        var now = DateTimeOffset.UtcNow;
        await using (var db = database.CreateDbContext())
        {
            await db.RateGates.Where(g => g.Id == 1).ExecuteUpdateAsync(g => g
                .SetProperty(x => x.BlockedUntil, (DateTimeOffset?)null)
                .SetProperty(x => x.Day, DateOnly.FromDateTime(now.UtcDateTime))
                .SetProperty(x => x.DayCallCount, 10_000));
        }

        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await StatusCommand.RunAsync([$"--ConnectionStrings:Postgres={database.ConnectionString}"], output, error, CancellationToken.None);

        Assert.True(exit == 0, error.ToString());
        var midnight = now.UtcDateTime.Date.AddDays(1).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) + " 00:00:00 UTC";
        var gate = output.ToString().Split('\n').Select(Cells).Single(c => c is ["rate gate", _])[1];
        Assert.StartsWith($"closed until {midnight}", gate, StringComparison.Ordinal);
        Assert.EndsWith("daily call limit 10,000 reached", gate, StringComparison.Ordinal);
        Assert.Contains(output.ToString().Split('\n'), l => Cells(l) is ["calls today (UTC day)", "10,000 of 10,000"]);
    }

    [Fact]
    public async Task Status_shows_the_allowed_rate_the_window_margin_and_the_learned_batch_limit()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        var learnedAt = new DateTimeOffset(2026, 11, 30, 9, 15, 0, TimeSpan.Zero);
        await using (var db = database.CreateDbContext())
        {
            await db.RateGates.Where(g => g.Id == 1).ExecuteUpdateAsync(g => g
                .SetProperty(x => x.AllowedRate, 2.1)
                .SetProperty(x => x.RateReason, "throttled")
                .SetProperty(x => x.RateChangedAt, learnedAt)
                .SetProperty(x => x.MarginSeconds, 0.095)
                .SetProperty(x => x.LearnedBatchLimit, 100)
                .SetProperty(x => x.BatchLimitLearnedAt, learnedAt)
                .SetProperty(x => x.BatchLimitMaxBatchSize, 200)
                .SetProperty(x => x.BatchLimitReason, "Gong's 400: You can assign up to 100 prospects in a single request"));
        }

        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await StatusCommand.RunAsync([$"--ConnectionStrings:Postgres={database.ConnectionString}"], output, error, CancellationToken.None);

        var lines = output.ToString().Split('\n');
        Assert.True(exit == 0, error.ToString());
        Assert.Contains(lines, l => Cells(l) is ["allowed rate", "2.10 calls/s (throttled since 2026-11-30 09:15:00 UTC)"]);
        Assert.Contains(lines, l => Cells(l) is ["window margin (latest call)", "95 ms"]);
        Assert.Contains(lines, l => Cells(l) is ["learned batch limit", "100 (since 2026-11-30 09:15:00 UTC, MaxBatchSize 200)"]);
        Assert.Contains(lines, l => Cells(l) is ["learned from", var reason] && reason.StartsWith("Gong's 400", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Status_exits_1_with_a_message_when_the_database_cannot_be_reached()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await StatusCommand.RunAsync(
            [$"--ConnectionStrings:Postgres=Host=127.0.0.1;Port={RunningWorker.ClosedPort()};Database=x;Username=x;Password=x;Timeout=2"],
            output, error, CancellationToken.None);
        Assert.Equal(1, exit);
        Assert.Contains("ConnectionStrings:Postgres", error.ToString(), StringComparison.Ordinal);
    }

    private static string[] Cells(string line) =>
        line.Split('│', '|').Select(c => c.Trim()).Where(c => c.Length > 0).ToArray();

    private static ProspectAssignment Final(string id, ProspectAssignmentStatus status, string? errorCode, DateTimeOffset completedAt)
    {
        var prospect = Prospect(id, status, completedAt.AddMinutes(-1));
        prospect.ErrorCode = errorCode;
        prospect.UpdatedAt = completedAt;
        prospect.CompletedAt = completedAt;
        return prospect;
    }

    private static AssignmentRequest Request(string requestId, List<ProspectAssignment> prospects, DateTimeOffset now) => new()
    {
        RequestId = requestId, FlowId = "111", OwnerEmail = "owner@example.com", OwnerEmailNormalized = "owner@example.com",
        ContentHash = new string('d', 64), ProspectCount = prospects.Count, ReceivedAt = now.AddHours(-4), Prospects = prospects,
    };

    private static GongCall Call(string endpoint, int prospects, int status, GongCallOutcomeClass outcome, DateTimeOffset startedAt) => new()
    {
        Endpoint = endpoint, FlowId = "111", OwnerEmail = "owner@example.com", ProspectCount = prospects, HttpStatus = status,
        OutcomeClass = outcome, StartedAt = startedAt, DurationMs = 300,
    };
}
