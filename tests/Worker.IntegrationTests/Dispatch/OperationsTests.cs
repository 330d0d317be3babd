using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using Worker.Host.Operations.Retention;
using Worker.Persistence.Entities;
using Worker.Testing;
using static Worker.IntegrationTests.Dispatch.DispatchHarness;

namespace Worker.IntegrationTests.Dispatch;

public sealed class OperationsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Stopping_during_a_call_releases_its_prospects_to_Pending_as_reconcile_first_and_leaves_nothing_InFlight()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var inCall = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var gong = await StartGongAsync();
        // Gong commits the call and holds its answer until the worker hangs up.
        gong.State.AfterCommit = async (_, ct) =>
        {
            inCall.TrySetResult();
            await Task.Delay(System.Threading.Timeout.InfiniteTimeSpan, ct);
        };
        await SeedRequestAsync(database, "stopped", "9", "owner@example.com", Ids("s", 10), DateTimeOffset.UtcNow - TimeSpan.FromSeconds(5));
        using var host = BuildWorker(output, database.ConnectionString, vhost, gong, shutdownTimeout: TimeSpan.FromSeconds(4));
        await host.StartAsync();
        await inCall.Task.WaitAsync(Timeout);
        await host.StopAsync();

        await using var db = database.CreateDbContext();
        var rows = await db.ProspectAssignments.ToListAsync();
        Assert.All(rows, r =>
        {
            Assert.Equal(ProspectAssignmentStatus.Pending, r.Status);
            Assert.True(r.ReconcileFirst);
        });
        Assert.Equal(0, await db.DispatchBatches.CountAsync(b => b.CompletedAt == null));
    }

    [Fact]
    public async Task Ops_views_report_backlog_calls_and_stuck_requests_and_retention_deletes_only_old_terminal_rows()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        var now = DateTimeOffset.UtcNow;
        var old = now - TimeSpan.FromDays(40);
        await SeedRequestAsync(database, "old-done", "1", "a@example.com", ["o1", "o2"], old);
        await SeedRequestAsync(database, "stuck", "1", "a@example.com", ["s1"], now - TimeSpan.FromMinutes(20));
        await SeedRequestAsync(database, "fresh", "2", "b@example.com", ["f1"], now);
        await using (var connection = await database.OpenConnectionAsync())
        {
            await using var command = new NpgsqlCommand("""
                UPDATE prospect_assignments SET status = 'Assigned', completed_at = @old
                  WHERE assignment_request_id = (SELECT id FROM assignment_requests WHERE request_id = 'old-done');
                UPDATE assignment_requests SET status = 'Succeeded', pending_count = 0, assigned_count = 2, completed_at = @old WHERE request_id = 'old-done';
                INSERT INTO outbox_messages (id, assignment_request_id, message_type, payload, created_at, published_at, attempts, available_at)
                  SELECT gen_random_uuid(), id, 'x', '{}', @old, @old, 1, @old FROM assignment_requests WHERE request_id = 'old-done';
                INSERT INTO gong_calls (endpoint, flow_id, owner_email, prospect_count, http_status, outcome_class, started_at, duration_ms)
                  VALUES ('assign', '1', 'a@example.com', 200, 200, 'Answered', now() - interval '10 minutes', 900),
                         ('assign', '1', 'a@example.com', 100, 200, 'Answered', now() - interval '5 minutes', 900),
                         ('assign', '1', 'a@example.com', 50, 200, 'Answered', @old, 900);
                INSERT INTO dispatch_batches (id, flow_id, owner_email, prospect_count, claimed_by, claimed_at, lease_expires_at, reclaimed, completed_at)
                  VALUES (gen_random_uuid(), '1', 'a@example.com', 2, 'r', @old, @old, false, @old);
                """, connection);
            command.Parameters.AddWithValue("old", old);
            await command.ExecuteNonQueryAsync();

            Assert.Equal((2L, 1L), await ScalarsAsync(connection, "SELECT assigned, pending FROM ops_backlog_by_group WHERE flow_id = '1'"));
            Assert.Equal((2L, 150m), await ScalarsAsync(connection, "SELECT calls, mean_fill FROM ops_gong_last_hour"));
            Assert.Equal(2L, await ScalarAsync(connection, "SELECT sum(calls)::bigint FROM ops_gong_calls_per_minute"));
            Assert.Equal("stuck", await ScalarAsync(connection, "SELECT string_agg(request_id, ',') FROM ops_stuck_requests"));
        }

        var clock = new FakeTimeProvider(now);
        using var host = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder().Also(b =>
        {
            b.Logging.UseTestLog(new TestLog(output.WriteLine));
            b.Configuration["ConnectionStrings:Postgres"] = database.ConnectionString;
            b.Configuration["Retention:ChunkSize"] = "1";
            b.Services.AddSingleton<TimeProvider>(clock);
            Worker.Host.Persistence.PersistenceExtensions.AddWorkerPersistence(b);
            b.Services.AddOptions<RetentionOptions>().BindConfiguration(RetentionOptions.SectionName);
            b.Services.AddSingleton<RetentionService>();
        }).Build();
        var deleted = await host.Services.GetRequiredService<RetentionService>().RunOnceAsync(CancellationToken.None);

        Assert.Equal(2, deleted["prospect_assignments"]);
        Assert.Equal(1, deleted["assignment_requests"]);
        Assert.Equal(1, deleted["outbox_messages"]);
        Assert.Equal(1, deleted["gong_calls"]);
        Assert.Equal(1, deleted["dispatch_batches"]);
        await using var db = database.CreateDbContext();
        Assert.Equal(["fresh", "stuck"], await db.AssignmentRequests.Select(r => r.RequestId).OrderBy(r => r).ToListAsync());
        Assert.Equal(2, await db.ProspectAssignments.CountAsync());
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    private static async Task<(object, object)> ScalarsAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return (reader.GetValue(0), reader.GetValue(1));
    }
}

internal static class BuilderExtensions
{
    public static T Also<T>(this T value, Action<T> action)
    {
        action(value);
        return value;
    }
}
