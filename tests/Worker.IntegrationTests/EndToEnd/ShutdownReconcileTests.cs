using System.Diagnostics;
using System.Globalization;
using Gong.Simulator;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using RabbitMQ.Client;
using Worker.Contracts;
using Worker.IntegrationTests.Dispatch;
using Worker.Persistence.Entities;
using Worker.Testing;
using Xunit.Abstractions;

namespace Worker.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 11, item 5, the shutdown case, with real processes: SIGTERM cancels an assign Gong is still working on (it
/// commits 10 s after the call arrived, after the client left); the replica started by the rolling deploy must not look
/// the prospects up before that call can no longer commit, so it finds them and sends nothing again.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class ShutdownReconcileTests(ITestOutputHelper output)
{
    // The in-flight call is cancelled ShutdownReserve (4 s) before the timeout, leaving time to record it (a cold EF Core
    // model in a fresh process costs about 2 s on a busy machine).
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(8);

    [Fact]
    public async Task A_call_cancelled_by_SIGTERM_that_Gong_commits_later_is_looked_up_by_the_next_replica_only_once_settled()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var options = new SimulatorOptions
        {
            Faults = new FaultOptions { Script = [new ScriptedFault { Kind = FaultKind.SlowCommit, CommitDelayMs = 10_000 }] },
        };
        options.RateLimit.RequestsPerSecond = 20;
        await using var simulator = await GongSimulatorApp.StartAsync(options, "http://127.0.0.1:0");
        await using var events = await ResultEvents.StartAsync(vhost.AmqpUri);
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["ConnectionStrings__Postgres"] = database.ConnectionString,
            ["Gong__BaseUrl"] = simulator.BaseUrl.ToString(),
            ["Gong__AccessKey"] = "sim-access-key",
            ["Gong__AccessKeySecret"] = "sim-access-key-secret",
            ["Gong__RequestsPerSecond"] = "20",
            ["Gong__AttemptTimeout"] = "00:00:16",
            ["Gong__ReconcileDelay"] = "00:00:00.200",
            ["Dispatch__MaxBatchDelay"] = "00:00:00.200",
            ["Dispatch__PollInterval"] = "00:00:00.100",
            ["Dispatch__ShutdownReserve"] = "00:00:04",
            ["Relay__PollInterval"] = "00:00:00.200",
            ["Operations__ShutdownTimeout"] = ShutdownTimeout.ToString("c", CultureInfo.InvariantCulture),
        };
        foreach (var (key, value) in vhost.ToWorkerConfiguration())
        {
            environment[key.Replace(":", "__", StringComparison.Ordinal)] = value!;
        }

        var request = new AssignProspectsToFlow("e2e-slow-1", "1695493301223591300", "owner.slow@example.com", EndToEndWorld.Ids("e2e-slow-", 200));
        DateTimeOffset terminatedAt;
        await using (var first = WorkerProcess.Start(new Dictionary<string, string>(environment) { ["Dispatch__ReplicaName"] = "first" }))
        {
            await first.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
            await PublishAsync(vhost, request);
            await Poll.UntilAsync(() => Task.FromResult(simulator.State.WaitingCalls == 1), TimeSpan.FromSeconds(60), "Gong working on the assign");

            terminatedAt = DateTimeOffset.UtcNow;
            await first.TerminateAsync();
            Assert.True(await first.WaitForExitAsync(ShutdownTimeout + TimeSpan.FromSeconds(5)), first.Tail());
            foreach (var line in first.Output.Where(l => l.Contains("\"Warning\"", StringComparison.Ordinal) || l.Contains("\"Error\"", StringComparison.Ordinal)).TakeLast(20))
            {
                output.WriteLine(line);
            }

            Assert.True(first.ExitCode == 0, $"exit code {first.ExitCode}:\n{first.Tail()}");
        }

        await using (var db = database.CreateDbContext())
        {
            var rows = await db.ProspectAssignments.AsNoTracking().ToListAsync();
            Assert.Equal(200, rows.Count);
            // Back to Pending, one attempt used (the call may have reached Gong), held until it can no longer commit.
            Assert.All(rows, r => Assert.True((r.Status, r.ReconcileFirst, r.Attempts) == (ProspectAssignmentStatus.Pending, true, 1), $"{r.Status} {r.ReconcileFirst} {r.Attempts} {r.ErrorCode}: {r.ErrorMessage} available {r.AvailableAt:O} SIGTERM {terminatedAt:O}"));
            Assert.All(rows, r => Assert.True(r.AvailableAt >= terminatedAt + TimeSpan.FromSeconds(12), $"available_at {(r.AvailableAt - terminatedAt).TotalSeconds:0.0} s after SIGTERM"));
        }

        // The rolling deploy's next replica starts at once, while Gong is still working on the cancelled call.
        await using (var second = WorkerProcess.Start(new Dictionary<string, string>(environment) { ["Dispatch__ReplicaName"] = "second" }))
        {
            await second.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));
            await Poll.UntilAsync(
                async () => events.HasAll([request.RequestId!]) && await DispatchHarness.AllPublishedAsync(database, 1),
                TimeSpan.FromSeconds(60),
                "the request's event after the restart");
            await second.TerminateAsync();
            Assert.True(await second.WaitForExitAsync(ShutdownTimeout + TimeSpan.FromSeconds(5)), second.Tail());
        }

        var calls = simulator.State.GetCalls();
        foreach (var call in calls)
        {
            output.WriteLine($"{call.Time:HH:mm:ss.fff} {call.Endpoint} {call.IdsCount} ids status {call.Status} fault {call.Fault} committed {call.Committed} assigned {call.Assigned}");
        }

        // One assign POST only: the cancelled one, which Gong committed after the client had left.
        var assign = Assert.Single(calls, c => c.Endpoint == SimulatorEndpoints.Assign);
        Assert.Equal((nameof(FaultKind.SlowCommit), true, 200), (assign.Fault, assign.Committed, assign.Assigned));
        var lookups = calls.Where(c => c.Endpoint == SimulatorEndpoints.Lookup).ToList();
        Assert.NotEmpty(lookups);
        Assert.All(lookups, l => Assert.True(l.Time >= assign.Time + TimeSpan.FromSeconds(10), "looked up only after Gong committed"));
        var stats = simulator.State.GetStats();
        Assert.Equal(200, stats.AssignmentsCount);
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);

        await DispatchHarness.AssertAllTerminalAsync(database);
        await using (var db = database.CreateDbContext())
        {
            var rows = await db.ProspectAssignments.AsNoTracking().ToListAsync();
            Assert.All(rows, r => Assert.Equal((ProspectAssignmentStatus.Assigned, true), (r.Status, r.Reconciled)));
            Assert.Equal(0, await db.GongCalls.CountAsync(c => c.Endpoint == "assign" && c.Replica == "second"));
        }

        var delivered = Assert.Single(events.All);
        Assert.Equal(RequestStatus.Succeeded, delivered.Message.Status);
        Assert.Equal(0u, await ErrorQueueDepthAsync(vhost));
    }

    private static async Task PublishAsync(TestVirtualHost vhost, AssignProspectsToFlow request)
    {
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host(vhost.Host, (ushort)vhost.Port, vhost.Name, h =>
        {
            h.Username(vhost.Username);
            h.Password(vhost.Password);
        }));
        await bus.StartAsync();
        try
        {
            await bus.Publish(request);
        }
        finally
        {
            await bus.StopAsync();
        }
    }

    private static async Task<uint> ErrorQueueDepthAsync(TestVirtualHost vhost)
    {
        await using var connection = await new ConnectionFactory { Uri = vhost.AmqpUri }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            return (await channel.QueueDeclarePassiveAsync("assign-prospects-to-flow_error")).MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return 0;
        }
    }
}
