using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Worker.Contracts;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Persistence.Entities;
using Worker.Testing;
using static Worker.IntegrationTests.Dispatch.DispatchHarness;

namespace Worker.IntegrationTests.Dispatch;

/// <summary>
/// Issue 11, items 6 and 7: a batch that crashes its sender (or whose last lookup died with its replica) ends as
/// RetriesExhausted instead of looping; writing a batch's results is idempotent and survives a short database outage.
/// </summary>
public sealed class DispatchFaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static readonly KeyValuePair<string, string?>[] Fast =
    [
        new("Dispatch:MaxAttempts", "3"),
        new("Dispatch:MaxBatchDelay", "00:00:00.100"),
        new("Dispatch:PollInterval", "00:00:00.100"),
        new("Gong:AttemptTimeout", "00:00:01"),
        new("Gong:ReconcileDelay", "00:00:00.100"),
    ];

    [Fact]
    public async Task A_batch_that_crashes_its_sender_uses_an_attempt_each_time_and_ends_RetriesExhausted()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        await using var gong = await StartGongAsync();
        var poison = new PoisonPill();
        await SeedRequestAsync(database, "poisoned", "101", "owner@example.com", Ids("poison-", 5), DateTimeOffset.UtcNow.AddSeconds(-5));
        await SeedRequestAsync(database, "healthy", "102", "owner@example.com", Ids("ok-", 5), DateTimeOffset.UtcNow.AddSeconds(-5));

        using var host = BuildWorker(output, database.ConnectionString, vhost, gong, settings: Fast, decorateSender: poison.Wrap);
        await host.StartAsync();
        await Poll.UntilAsync(() => events.Received.Count >= 2, Timeout, "both requests' events");
        await host.StopAsync();

        // Three crashes use the three attempts; the fourth claim (its final lookup) crashes too and ends the batch.
        Assert.Equal(4, poison.Crashes);
        var failed = events.For("poisoned")!;
        Assert.Equal(RequestStatus.Failed, failed.Status);
        Assert.All(failed.Outcomes, o =>
        {
            Assert.Equal((ProspectStatus.Failed, "RetriesExhausted"), (o.Status, o.ErrorCode));
            Assert.Contains("SenderFailed", o.ErrorMessage, StringComparison.Ordinal);
            Assert.Contains("poison pill", o.ErrorMessage, StringComparison.Ordinal);
        });
        Assert.Equal(RequestStatus.Succeeded, events.For("healthy")!.Status);
        Assert.Equal(2, events.Received.Count);
        Assert.All(gong.Calls(), c => Assert.Equal("102", c.FlowId));
        gong.AssertAssignedOnce(5);
        await using (var db = database.CreateDbContext())
        {
            Assert.All(await db.ProspectAssignments.Where(p => p.FlowId == "101").ToListAsync(), r => Assert.Equal(3, r.Attempts));
        }

        await AssertAllTerminalAsync(database);
    }

    [Fact]
    public async Task Prospects_whose_last_lookup_died_with_its_replica_end_RetriesExhausted_without_another_call()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        await using var gong = await StartGongAsync();
        await SeedRequestAsync(database, "killer", "103", "owner@example.com", Ids("kill-", 4), DateTimeOffset.UtcNow.AddSeconds(-5));
        await using (var connection = await database.OpenConnectionAsync())
        {
            // As a reclaim leaves a batch that killed its replica on every claim, its final lookup included.
            await using var update = new NpgsqlCommand(
                "UPDATE prospect_assignments SET attempts = 4, reconcile_first = true, error_code = 'LeaseExpired', error_message = 'replica died'", connection);
            await update.ExecuteNonQueryAsync();
        }

        using var host = BuildWorker(output, database.ConnectionString, vhost, gong, settings: Fast);
        await host.StartAsync();
        await Poll.UntilAsync(() => events.Received.Count >= 1, Timeout, "the request's event");
        await host.StopAsync();

        Assert.Empty(gong.Calls());
        var message = events.For("killer")!;
        Assert.All(message.Outcomes, o =>
        {
            Assert.Equal((ProspectStatus.Failed, "RetriesExhausted"), (o.Status, o.ErrorCode));
            Assert.Contains("LeaseExpired", o.ErrorMessage, StringComparison.Ordinal);
        });
        await AssertAllTerminalAsync(database);
    }

    [Fact]
    public async Task Writing_a_batchs_results_again_after_a_lost_commit_answer_inserts_nothing_and_claims_no_reclaim()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var ids = Ids("twice-", 3);
        await SeedRequestAsync(database, "twice", "104", "owner@example.com", ids, DateTimeOffset.UtcNow.AddSeconds(-5));
        await using var gong = await StartGongAsync();
        using var host = BuildWorker(output, database.ConnectionString, vhost, gong, settings: [.. Fast, new("Dispatch:Enabled", "false")]);
        var claimer = host.Services.GetRequiredService<BatchClaimer>();
        var writer = host.Services.GetRequiredService<OutcomeWriter>();

        var batch = await claimer.ClaimAsync("104", "owner@example.com", CancellationToken.None);
        Assert.NotNull(batch);
        var call = new GongCall
        {
            Endpoint = "assign", FlowId = "104", OwnerEmail = "owner@example.com", ProspectCount = 3, HttpStatus = 200,
            OutcomeClass = GongCallOutcomeClass.Answered, StartedAt = DateTimeOffset.UtcNow, DurationMs = 120,
        };
        var result = new BatchResult([.. ids.Select((id, i) => new ProspectResult(id, ProspectResultKind.Assigned, $"{900 + i}", "Running"))], [call]);

        var first = await writer.RecordAsync(batch, result, CancellationToken.None);
        var again = await writer.RecordAsync(batch, result, CancellationToken.None);

        Assert.Equal((false, false, 1), (first.LeaseLost, first.AlreadyRecorded, first.CompletedRequests));
        Assert.Equal((false, true, 0), (again.LeaseLost, again.AlreadyRecorded, again.CompletedRequests));
        await using var db = database.CreateDbContext();
        var stored = Assert.Single(await db.GongCalls.AsNoTracking().ToListAsync());
        Assert.Equal((batch.BatchId, call.CallId), (stored.BatchId, stored.CallId));
        var request = await db.AssignmentRequests.AsNoTracking().SingleAsync();
        Assert.Equal((3, 0, RequestStatus.Succeeded), (request.AssignedCount, request.PendingCount, request.Status));
        Assert.Single(await db.OutboxMessages.AsNoTracking().ToListAsync());
    }

    [Fact]
    public async Task A_result_write_that_fails_during_a_short_database_outage_is_retried_until_it_lands()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        var connection = new NpgsqlConnectionStringBuilder(database.ConnectionString);
        await using var proxy = new TcpProxy(connection.Host!, connection.Port);
        var viaProxy = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port, Pooling = false }.ConnectionString;
        var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var gong = await StartGongAsync();
        var assigns = 0;
        // Gong answers; by then Postgres is unreachable, so the results cannot be written for a while.
        gong.State.AfterCommit = (_, _) =>
        {
            if (Interlocked.Increment(ref assigns) == 1)
            {
                proxy.Cut();
                answered.TrySetResult();
            }

            return Task.CompletedTask;
        };
        var ids = Ids("outage-", 10);
        await SeedRequestAsync(database, "outage", "105", "owner@example.com", ids, DateTimeOffset.UtcNow.AddSeconds(-5));

        using var host = BuildWorker(output, viaProxy, vhost, gong, settings: [.. Fast, new("Dispatch:LeaseDuration", "00:00:45")]);
        await host.StartAsync();
        await answered.Task.WaitAsync(Timeout);
        // Longer than the old budget of five quick tries (about 6 s), well inside the 45 s lease.
        await Task.Delay(TimeSpan.FromSeconds(10));
        proxy.Restore();
        await Poll.UntilAsync(() => events.Received.Count >= 1, Timeout, "the request's event");
        await host.StopAsync();

        var call = Assert.Single(gong.Calls());
        Assert.Equal((SimulatorEndpoints.Assign, 200), (call.Endpoint, call.Status));
        gong.AssertAssignedOnce(ids.Length);
        await using var db = database.CreateDbContext();
        var batch = Assert.Single(await db.DispatchBatches.AsNoTracking().ToListAsync());
        Assert.False(batch.Reclaimed);
        Assert.All(await db.ProspectAssignments.AsNoTracking().ToListAsync(), r => Assert.Equal((ProspectAssignmentStatus.Assigned, false, 0), (r.Status, r.Reconciled, r.Attempts)));
        // Gong's one call is the one batch's: its row names the batch and Gong's requestId.
        var stored = Assert.Single(await db.GongCalls.AsNoTracking().ToListAsync());
        Assert.Equal((batch.Id, call.RequestId), (stored.BatchId, stored.GongRequestId));
        await AssertAllTerminalAsync(database);
        // One event (one outbox row); the relay publishes at least once, so a copy may repeat its MessageId.
        Assert.Single(events.Received.Select(e => e.MessageId).Distinct());
        Assert.All(events.Received, e => Assert.Equal(RequestStatus.Succeeded, e.Message.Status));
    }

    /// <summary>Wraps the real Gong client so it throws for any batch holding a <c>poison-</c> id (a bug, or a crash of
    /// the replica) and otherwise calls Gong; counts the crashes of every wrapped sender.</summary>
    private sealed class PoisonPill
    {
        private int crashes;

        public int Crashes => Volatile.Read(ref crashes);

        public IGongBatchSender Wrap(IGongBatchSender inner) => new Sender(this, inner);

        private sealed class Sender(PoisonPill pill, IGongBatchSender inner) : IGongBatchSender
        {
            public Task<BatchResult> SendAsync(AssignmentBatch batch, CancellationToken cancellationToken)
            {
                if (batch.CrmProspectIds.Any(id => id.StartsWith("poison-", StringComparison.Ordinal)))
                {
                    Interlocked.Increment(ref pill.crashes);
                    throw new InvalidOperationException("poison pill");
                }

                return inner.SendAsync(batch, cancellationToken);
            }
        }
    }
}
