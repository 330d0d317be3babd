using System.Diagnostics;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Host.Dispatch;
using Worker.Testing;
using static Worker.Benchmarks.Scenarios.BenchSupport;

namespace Worker.Benchmarks.Scenarios;

/// <summary>
/// Worker memory with a large backlog: 1,000,000 Pending prospects (G groups × P, one request per group) are seeded
/// directly in Postgres with binary COPY, then the worker runs as a separate process (<c>dotnet Worker.Host.dll run</c>
/// from the Release build, settings as environment variables, simulator at Gong's 3 calls/s) for D seconds while its
/// RSS is sampled from <c>/proc/&lt;pid&gt;/status</c> (VmRSS, and VmHWM at the end). Afterwards the dispatcher's own
/// queries (<see cref="PendingGroupQuery.GetPendingGroupsAsync"/> and <see cref="BatchClaimer.ClaimAsync"/>) are timed on
/// the same backlog.
/// Options: <c>--rss-groups=G</c> (5,000), <c>--rss-per-group=P</c> (200), <c>--rss-seconds=D</c> (30),
/// <c>--worker-dll=path</c> (default src/Worker.Host/bin/Release/net10.0/Worker.Host.dll of this repository).
/// </summary>
internal sealed class RssScenario : IScenario
{
    public string Name => "rss";

    public string Description => "worker process peak RSS with 1,000,000 pending prospects; dispatcher claim timing on that backlog";

    public async Task<IReadOnlyList<ResultRow>> RunAsync(ScenarioContext context, CancellationToken cancellationToken)
    {
        var groups = context.GetInt("rss-groups", 5_000);
        var perGroup = context.GetInt("rss-per-group", 200);
        var seconds = context.GetInt("rss-seconds", 30);
        var dll = context.GetString("worker-dll") ?? WorkerProcess.FindWorkerDll();

        await using var database = await context.Services.CreateDatabaseAsync();
        await using var vhost = await context.Services.CreateVirtualHostAsync();
        await using var simulator = await StartSimulatorAsync(3);

        var seed = Stopwatch.StartNew();
        var seeded = await SeedAsync(database, groups, perGroup);
        seed.Stop();
        Console.Error.WriteLine($"rss: seeded {seeded:N0} pending prospects in {groups:N0} groups in {seed.Elapsed.TotalSeconds:F1} s");

        var (peakHwm, peakRss, calls, batches, callsPerSecond) = await RunWorkerProcessAsync(dll, database, vhost, simulator, seconds);
        Console.Error.WriteLine($"rss: peak VmHWM {peakHwm / 1024.0:F0} MiB, {calls} calls, {batches} batches in {seconds} s");

        var (look, claim) = await TimeDispatcherQueriesAsync(database);
        Console.Error.WriteLine($"rss: pending-groups look {look:F0} ms, claim {claim:F0} ms (median)");

        var pendingLeft = await ScalarAsync<long>(database, "SELECT count(*) FROM prospect_assignments WHERE status = 'Pending'");
        return
        [
            new(Name, "worker peak RSS", $"{N0(peakHwm / 1024.0)} MiB", $"VmHWM of `dotnet Worker.Host.dll run` over {seconds} s with {N0(seeded)} pending ({N0(groups)} groups x {perGroup}); max sampled VmRSS {N0(peakRss / 1024.0)} MiB"),
            new(Name, "calls in the window", $"{calls} ({F(callsPerSecond, 2)}/s)", $"gong_calls in {seconds} s incl. process start, {batches} batches; rate = (calls-1) / first-to-last call; limit 3 calls/s"),
            new(Name, "dispatcher look at groups", $"{N0(look)} ms", $"GetPendingGroupsAsync, median of 5, {N0(pendingLeft)} pending"),
            new(Name, "dispatcher claim", $"{N0(claim)} ms", "ClaimAsync of one ready group (200 rows), median of 5"),
        ];
    }

    private static async Task<long> SeedAsync(TestDatabase database, int groups, int perGroup)
    {
        await using var connection = await database.OpenConnectionAsync();
        var now = DateTimeOffset.UtcNow;
        var requests = new List<(long Id, string Flow, string Owner)>(groups);
        await using (var insert = new NpgsqlCommand(
                         """
                         INSERT INTO assignment_requests (request_id, flow_id, owner_email, owner_email_normalized, prospect_count, pending_count,
                             assigned_count, not_assigned_count, failed_count, rejected_count, content_hash, received_at)
                         SELECT 'rss-' || g, (1695493301000000000 + g)::text, 'owner' || g || '@example.com', 'owner' || g || '@example.com',
                             @n, @n, 0, 0, 0, 0, repeat('0', 64), @now
                         FROM generate_series(1, @groups) g
                         RETURNING id, flow_id, owner_email_normalized
                         """, connection))
        {
            insert.Parameters.AddWithValue("n", perGroup);
            insert.Parameters.AddWithValue("now", now);
            insert.Parameters.AddWithValue("groups", groups);
            await using var reader = await insert.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                requests.Add((reader.GetInt64(0), reader.GetString(1), reader.GetString(2)));
            }
        }

        await using (var writer = await connection.BeginBinaryImportAsync(
                         "COPY prospect_assignments (assignment_request_id, crm_prospect_id, flow_id, owner_email, status, reconciled, " +
                         "reconcile_first, attempts, available_at, created_at, updated_at) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var (id, flow, owner) in requests)
            {
                for (var i = 0; i < perGroup; i++)
                {
                    await writer.StartRowAsync();
                    await writer.WriteAsync(id, NpgsqlDbType.Bigint);
                    await writer.WriteAsync($"0035g{id:D7}{i:D6}", NpgsqlDbType.Varchar);
                    await writer.WriteAsync(flow, NpgsqlDbType.Varchar);
                    await writer.WriteAsync(owner, NpgsqlDbType.Varchar);
                    await writer.WriteAsync("Pending", NpgsqlDbType.Varchar);
                    await writer.WriteAsync(false, NpgsqlDbType.Boolean);
                    await writer.WriteAsync(false, NpgsqlDbType.Boolean);
                    await writer.WriteAsync(0, NpgsqlDbType.Integer);
                    await writer.WriteAsync(now, NpgsqlDbType.TimestampTz);
                    await writer.WriteAsync(now, NpgsqlDbType.TimestampTz);
                    await writer.WriteAsync(now, NpgsqlDbType.TimestampTz);
                }
            }

            await writer.CompleteAsync();
        }

        // What autovacuum would do shortly after such a load; the planner needs the statistics.
        await using (var analyze = new NpgsqlCommand("ANALYZE prospect_assignments; ANALYZE assignment_requests", connection) { CommandTimeout = 600 })
        {
            await analyze.ExecuteNonQueryAsync();
        }

        return (long)groups * perGroup;
    }

    private static async Task<(long PeakHwmKb, long PeakRssKb, long Calls, long Batches, double CallsPerSecond)> RunWorkerProcessAsync(
        string dll, TestDatabase database, Worker.Testing.TestVirtualHost vhost, Gong.Simulator.RunningSimulator simulator, int seconds)
    {
        long peakRss = 0, peakHwm = 0;
        await using (var worker = WorkerProcess.Start(dll, database, vhost,
            [.. GongSettings(simulator, 3), new("Gong:DailyCallLimit", "10000"), new("Dispatch:ReplicaName", "bench-rss")]))
        {
            var stopwatch = Stopwatch.StartNew();
            while (stopwatch.Elapsed < TimeSpan.FromSeconds(seconds))
            {
                worker.ThrowIfExited();
                var (rss, hwm) = ReadStatus(worker.Process.Id);
                peakRss = Math.Max(peakRss, rss);
                peakHwm = Math.Max(peakHwm, hwm);
                await Task.Delay(100);
            }
        }

        var calls = await ScalarAsync<long>(database, "SELECT count(*) FROM gong_calls");
        var span = await ScalarAsync<double>(database, "SELECT coalesce(extract(epoch FROM max(started_at) - min(started_at)), 0)::float8 FROM gong_calls");
        var batches = await ScalarAsync<long>(database, "SELECT count(*) FROM dispatch_batches");
        if (calls == 0)
        {
            throw new InvalidOperationException($"The worker process made no Gong call in {seconds} s.");
        }

        return (peakHwm, peakRss, calls, batches, calls > 1 && span > 0 ? (calls - 1) / span : 0);
    }

    private static (long RssKb, long HwmKb) ReadStatus(int pid)
    {
        long rss = 0, hwm = 0;
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = ParseKb(line);
                }
                else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    hwm = ParseKb(line);
                }
            }
        }
        catch (IOException)
        {
            // The process exited between the check and the read.
        }

        return (rss, hwm);
    }

    private static long ParseKb(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], Invariant);

    /// <summary>Times the dispatcher's real queries (its <see cref="PendingGroupQuery"/> and <see cref="BatchClaimer"/>) on the backlog the process left.</summary>
    private static async Task<(double LookMs, double ClaimMs)> TimeDispatcherQueriesAsync(TestDatabase database)
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var options = Options.Create(new DispatchOptions { ReplicaName = "bench-probe", MaxBatchDelay = TimeSpan.Zero });
        var pendingGroups = new PendingGroupQuery(dataSource, options, TimeProvider.System);
        var claimer = new BatchClaimer(dataSource, options, new ProspectStateMachine(options), TimeProvider.System);
        var looks = new List<double>();
        var claims = new List<double>();
        IReadOnlyList<PendingGroup> groups = [];
        for (var i = 0; i < 5; i++)
        {
            var stopwatch = Stopwatch.StartNew();
            groups = await pendingGroups.GetPendingGroupsAsync(CancellationToken.None);
            looks.Add(stopwatch.Elapsed.TotalMilliseconds);
        }

        foreach (var group in groups.Take(5))
        {
            var stopwatch = Stopwatch.StartNew();
            _ = await claimer.ClaimAsync(group.FlowId, group.OwnerEmail, CancellationToken.None)
                ?? throw new InvalidOperationException($"Nothing to claim in group {group.FlowId}.");
            claims.Add(stopwatch.Elapsed.TotalMilliseconds);
        }

        looks.Sort();
        claims.Sort();
        return (Percentile(looks, 50), Percentile(claims, 50));
    }
}
