using System.Diagnostics;
using System.Globalization;
using Gong.Simulator;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Worker.Contracts;
using Worker.IntegrationTests.Dispatch;
using Worker.Persistence.Entities;
using Worker.Testing;
using Xunit.Abstractions;

namespace Worker.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 7, "Done when": SIGTERM during a drain, then a restart, leaves nothing InFlight and loses nothing. The
/// worker runs as a real process (<c>dotnet Worker.Host.dll run</c>), so the signal goes through the same code as in
/// a container.
/// </summary>
public sealed class ShutdownProcessTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Sigterm_during_a_drain_then_a_restart_leaves_nothing_in_flight_and_loses_nothing()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        // Slow Gong (1–6 s per call) so that calls are running when the signal comes, some past the shutdown reserve.
        var options = new SimulatorOptions { Faults = new FaultOptions { LatencyMinMs = 1000, LatencyMaxMs = 6000 } };
        options.RateLimit.RequestsPerSecond = 20;
        await using var simulator = await GongSimulatorApp.StartAsync(options, "http://127.0.0.1:0");
        await using var events = await ResultEvents.StartAsync(vhost.AmqpUri);
        var environment = WorkerProcess.SimulatorEnvironment(database.ConnectionString, vhost, simulator.BaseUrl, 20);
        environment["Dispatch__ShutdownReserve"] = "00:00:03";
        environment["Operations__ShutdownTimeout"] = ShutdownTimeout.ToString("c", CultureInfo.InvariantCulture);

        // 40 requests x 100 ids over 4 flow/owner groups: 20 batches of 200.
        var requests = Enumerable.Range(0, 40)
            .Select(i => new AssignProspectsToFlow($"e2e-term-{i:D2}", $"169549330122359{i % 4:D4}", $"owner{i % 4}@example.com", EndToEndWorld.Ids($"e2e-term-{i:D2}-", 100)))
            .ToList();

        await using (var first = WorkerProcess.Start(new Dictionary<string, string>(environment) { ["Dispatch__ReplicaName"] = "first" }))
        {
            await first.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
            await PublishAsync(vhost, requests);
            await Poll.UntilAsync(
                async () => await CountAsync(database, ProspectAssignmentStatus.Assigned) > 0 && await CountAsync(database, ProspectAssignmentStatus.InFlight) > 0,
                TimeSpan.FromSeconds(60),
                "a drain in progress (some Assigned, some InFlight)");

            var stopwatch = Stopwatch.StartNew();
            await first.TerminateAsync();
            var exited = await first.WaitForExitAsync(ShutdownTimeout + TimeSpan.FromSeconds(5));
            Assert.True(exited, $"worker still running {stopwatch.Elapsed} after SIGTERM:\n{first.Tail()}");
            Assert.True(stopwatch.Elapsed < ShutdownTimeout + TimeSpan.FromSeconds(2), $"exit took {stopwatch.Elapsed}");
            Assert.True(first.ExitCode == 0, $"exit code {first.ExitCode} after {stopwatch.Elapsed}:\n{first.Tail()}");
            output.WriteLine($"first worker exited {stopwatch.Elapsed.TotalSeconds:0.00} s after SIGTERM with code {first.ExitCode}");
            foreach (var line in first.Output.Where(l => l.Contains("\"Warning\"", StringComparison.Ordinal) || l.Contains("\"Error\"", StringComparison.Ordinal)).TakeLast(30))
            {
                output.WriteLine(line);
            }
        }

        await using (var db = database.CreateDbContext())
        {
            Assert.Equal(0, await db.ProspectAssignments.CountAsync(p => p.Status == ProspectAssignmentStatus.InFlight));
            Assert.Equal(0, await db.DispatchBatches.CountAsync(b => b.CompletedAt == null));
            Assert.True(await db.ProspectAssignments.CountAsync(p => p.Status == ProspectAssignmentStatus.Pending) > 0, "the drain was interrupted (work left Pending)");
        }

        await using (var second = WorkerProcess.Start(new Dictionary<string, string>(environment) { ["Dispatch__ReplicaName"] = "second" }))
        {
            await second.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
            await Poll.UntilAsync(
                async () => events.HasAll(requests.Select(r => r.RequestId!)) && await DispatchHarness.AllPublishedAsync(database, requests.Count),
                TimeSpan.FromSeconds(120),
                "every request completed and its event published after the restart");
            await second.TerminateAsync();
            Assert.True(await second.WaitForExitAsync(ShutdownTimeout + TimeSpan.FromSeconds(5)), second.Tail());
            Assert.True(second.ExitCode == 0, $"exit code {second.ExitCode}:\n{second.Tail()}");
        }

        await DispatchHarness.AssertAllTerminalAsync(database);
        await using (var db = database.CreateDbContext())
        {
            Assert.Equal(4000, await db.ProspectAssignments.CountAsync(p => p.Status == ProspectAssignmentStatus.Assigned));
            var requestRows = await db.AssignmentRequests.AsNoTracking().ToListAsync();
            Assert.Equal(requests.Count, requestRows.Count);
            Assert.All(requestRows, r => Assert.Equal(RequestStatus.Succeeded, r.Status));
            var outbox = await db.OutboxMessages.AsNoTracking().ToDictionaryAsync(o => o.AssignmentRequestId!.Value, o => o.Id);
            foreach (var request in requestRows)
            {
                // At least once, and every copy carries the outbox row id, so a consumer drops duplicates by MessageId.
                var deliveries = events.For(request.RequestId);
                Assert.NotEmpty(deliveries);
                Assert.All(deliveries, d => Assert.Equal(outbox[request.Id], d.MessageId));
                Assert.Equal(100, deliveries[0].Message.Outcomes.Count);
            }

            Assert.Equal(requests.Count, events.All.Select(e => e.MessageId).Distinct().Count());
        }

        var stats = simulator.State.GetStats();
        Assert.Equal(4000, stats.AssignmentsCount);
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);
    }

    private static async Task<int> CountAsync(TestDatabase database, ProspectAssignmentStatus status)
    {
        await using var db = database.CreateDbContext();
        return await db.ProspectAssignments.CountAsync(p => p.Status == status);
    }

    private static async Task PublishAsync(TestVirtualHost vhost, IEnumerable<AssignProspectsToFlow> requests)
    {
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host(vhost.Host, (ushort)vhost.Port, vhost.Name, h =>
        {
            h.Username(vhost.Username);
            h.Password(vhost.Password);
        }));
        await bus.StartAsync();
        try
        {
            await Task.WhenAll(requests.Select(r => bus.Publish(r)));
        }
        finally
        {
            await bus.StopAsync();
        }
    }
}
