using System.Diagnostics;
using Gong.Simulator;
using Worker.Testing;
using static Worker.Benchmarks.Scenarios.BenchSupport;

namespace Worker.Benchmarks.Scenarios;

/// <summary>
/// Draining a backlog through the simulator: requests of 1–500 prospects over G (flow, owner) groups of random sizes are
/// ingested first (dispatch off), then a full worker (real host wiring) drains them against the simulator at
/// <c>--drain-rps</c> calls/s (default 3, Gong's limit; the worker's gate is set to the same). Measures calls used
/// against the minimum Σ⌈n_group/200⌉, mean fill, achieved calls/s, 429s (gong_calls and the simulator) and
/// duplicate assigns seen by the simulator. The simulator can stand for a real network: arrival jitter of 0–J ms per
/// call and an extra delay on the first request of each new connection (a TLS handshake); the worker can run as several
/// replicas started together on one database and vhost, each its own process (<c>dotnet Worker.Host.dll run</c> from the
/// Release build, as in production: one replica's GC pause or descheduling does not hold the others) or, with
/// <c>--replica-mode=in-process</c>, as hosts in the benchmark's process. The throughput bound is R / (1 + J): with
/// jitter J no pacing can safely pass more. The machine's load average (1 min) before and after the drain is reported
/// with the rate: on a busy machine the rate is pessimistic.
/// Options: <c>--drain-groups=G</c> (20), <c>--drain-prospects=N</c> (20,000), <c>--drain-rps=R</c> (3),
/// <c>--replicas=K</c> (1), <c>--jitter-ms=J</c> (0), <c>--connect-delay-ms=D</c> (0),
/// <c>--replica-mode=process|in-process</c> (process), <c>--worker-dll=path</c> (the Release build of this repository),
/// <c>--worker-logs=DIR</c> (each replica process's whole output, its Gong and dispatch components at Debug, in
/// DIR/bench-replica-N.log).
/// </summary>
internal sealed class DrainScenario : IScenario
{
    public string Name => "drain";

    public string Description => "a backlog over several (flow, owner) groups drained through the Gong simulator at its rate limit";

    public async Task<IReadOnlyList<ResultRow>> RunAsync(ScenarioContext context, CancellationToken cancellationToken)
    {
        var groups = context.GetInt("drain-groups", 20);
        var total = context.GetInt("drain-prospects", 20_000);
        var rps = context.GetInt("drain-rps", 3);
        var replicas = context.GetInt("replicas", 1);
        var jitterMs = context.GetInt("jitter-ms", 0);
        var connectDelayMs = context.GetInt("connect-delay-ms", 0);
        var inProcess = context.GetString("replica-mode") switch
        {
            null or "process" => false,
            "in-process" => true,
            var other => throw new ArgumentException($"--replica-mode must be process or in-process, not {other}."),
        };
        var dll = inProcess ? null : context.GetString("worker-dll") ?? WorkerProcess.FindWorkerDll();
        var logs = context.GetString("worker-logs");
        if (logs is not null)
        {
            Directory.CreateDirectory(logs);
        }

        await using var database = await context.Services.CreateDatabaseAsync();
        await using var vhost = await context.Services.CreateVirtualHostAsync();
        await using var simulator = await StartSimulatorAsync(rps);
        var faults = simulator.State.Faults;
        faults.ArrivalJitterMs = jitterMs;
        faults.NewConnectionDelayMs = connectDelayMs;
        simulator.State.SetFaults(faults);

        // Random group sizes (fixed seed), each group split into requests of 1–500 prospects.
        var bodies = DrainWorkload.Create(groups, total).Select(r => r.ToPlainJson()).ToList();

        // The backlog: everything stored first by an ingest-only worker.
        await (await StartWorkerAsync(database, vhost, WorkerSettings.IngestOnly)).DisposeAsync();
        await PublishAndWaitQueuedAsync(vhost, bodies);
        await using (await StartWorkerAsync(database, vhost, WorkerSettings.IngestOnly))
        {
            await Poll.UntilAsync(
                async () => await ScalarAsync<long>(database, "SELECT count(*) FROM assignment_requests") >= bodies.Count,
                TimeSpan.FromMinutes(5),
                "the backlog to be stored");
        }

        var prospects = await ScalarAsync<long>(database, "SELECT count(*) FROM prospect_assignments WHERE status = 'Pending'");
        var minimum = await ScalarAsync<long>(database,
            "SELECT sum(ceil(n / 200.0))::bigint FROM (SELECT count(DISTINCT crm_prospect_id) AS n FROM prospect_assignments GROUP BY flow_id, owner_email) g");
        Console.Error.WriteLine($"drain: {bodies.Count} requests, {prospects} prospects over {groups} groups stored; minimum {minimum} calls");

        // Every replica starts at the same moment, cold (its own connections and lanes).
        var loadBefore = LoadAverage();
        // The simulator stamps arrivals in this process: a GC pause here stamps a call that reached its socket on time
        // late (with 140,000 prospects in its memory, gen1 pauses of 30 ms were measured, and a self-caused 429 the
        // workers did not cause). Gong's door has no such pause: the drain runs in a region without GC when it can.
        var noGc = StartNoGcRegion();
        var gcBefore = (Pause: GC.GetTotalPauseDuration(), Gen0: GC.CollectionCount(0), Gen1: GC.CollectionCount(1), Gen2: GC.CollectionCount(2));
        var stopwatch = Stopwatch.StartNew();
        IEnumerable<KeyValuePair<string, string>> Settings(int replica) =>
            [.. GongSettings(simulator, rps), new("Dispatch:ReplicaName", $"bench-replica-{replica}")];
        var ports = Enumerable.Range(0, replicas).Select(_ => FreePort()).ToList();
        var processes = inProcess ? [] : Enumerable.Range(0, replicas)
            .Select(r => WorkerProcess.Start(dll!, database, vhost, [.. Settings(r), new("Urls", $"http://127.0.0.1:{ports[r]}")],
                logs is null ? null : Path.Combine(logs, $"bench-replica-{r}.log"))).ToList();
        var workers = inProcess
            ? await Task.WhenAll(Enumerable.Range(0, replicas).Select(r => StartWorkerAsync(database, vhost, Settings(r).Select(kv => $"--{kv.Key}={kv.Value}"))))
            : [.. processes.Cast<IAsyncDisposable>()];
        try
        {
            await Poll.UntilAsync(
                async () =>
                {
                    processes.ForEach(p => p.ThrowIfExited());
                    return await ScalarAsync<long>(database, "SELECT count(*) FROM assignment_requests WHERE status IS NULL") == 0;
                },
                TimeSpan.FromMinutes(15),
                "every request to complete");
            stopwatch.Stop();
            if (!inProcess)
            {
                Console.Error.WriteLine($"drain: gate slots per replica (moved / given up): {string.Join(", ", await Task.WhenAll(ports.Select(GateSlotCountsAsync)))}");
            }
        }
        finally
        {
            foreach (var worker in workers)
            {
                await worker.DisposeAsync();
            }
        }

        var loadAfter = LoadAverage();
        var noGcHeld = System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion;
        if (noGcHeld)
        {
            GC.EndNoGCRegion();
        }

        Console.Error.WriteLine($"drain: no-GC region of {noGc / (1024 * 1024)} MiB for the drain: {(noGc == 0 ? "not available" : noGcHeld ? "held" : "ended by a collection")}");
        Console.Error.WriteLine(
            $"drain: GC of the benchmark process (the simulator's) during the drain: {(GC.GetTotalPauseDuration() - gcBefore.Pause).TotalMilliseconds:F0} ms paused in " +
            $"{GC.CollectionCount(0) - gcBefore.Gen0} collections ({GC.CollectionCount(1) - gcBefore.Gen1} gen1, {GC.CollectionCount(2) - gcBefore.Gen2} gen2); " +
            $"last gen1 pause {GC.GetGCMemoryInfo(GCKind.Ephemeral).PauseDurations[0].TotalMilliseconds:F1} ms, last full {GC.GetGCMemoryInfo(GCKind.FullBlocking).PauseDurations[0].TotalMilliseconds:F1} ms, " +
            $"last background {GC.GetGCMemoryInfo(GCKind.Background).PauseDurations[0].TotalMilliseconds:F1} ms");
        var assignCalls = await ScalarAsync<long>(database, "SELECT count(*) FROM gong_calls WHERE endpoint = 'assign'");
        var allCalls = await ScalarAsync<long>(database, "SELECT count(*) FROM gong_calls");
        var throttled = await ScalarAsync<long>(database, "SELECT count(*) FROM gong_calls WHERE http_status = 429");
        var meanFill = await ScalarAsync<double>(database, "SELECT coalesce(avg(prospect_count), 0)::float8 FROM gong_calls WHERE endpoint = 'assign' AND http_status = 200");
        var assigned = await ScalarAsync<long>(database, "SELECT count(*) FROM prospect_assignments WHERE status = 'Assigned'");
        var stats = simulator.State.GetStats();

        // Calls/s where Gong counts them: arrivals at the simulator, first to last.
        var log = simulator.State.GetCalls();
        var arrivals = log.Select(c => c.Time).Order().ToList();
        foreach (var throttled429 in log.Where(c => c.SelfCausedRateLimited == true))
        {
            // What the window looked like: every arrival in the second before the self-caused 429, from the first call.
            var window = log.Where(c => c.Time > throttled429.Time - TimeSpan.FromSeconds(1) && c.Time <= throttled429.Time)
                .Select(c => $"{(c.Time - arrivals[0]).TotalSeconds:F3}:{c.Status}");
            Console.Error.WriteLine($"drain: self-caused 429 (call {log.ToList().IndexOf(throttled429) + 1} of {log.Count}); arrivals in the second before it: {string.Join(' ', window)}");
        }

        if (arrivals.Count > rps + 1)
        {
            // Where the time went: any R + 1 arrivals must span more than 1 s, so a span of R gaps beyond 1 s is the
            // margin the pacing kept; single gaps of more than two intervals are stalls (a slot given up, nothing ready).
            var windows = Enumerable.Range(0, arrivals.Count - rps).Select(i => (arrivals[i + rps] - arrivals[i]).TotalMilliseconds - 1000).Order().ToList();
            var gaps = Enumerable.Range(1, arrivals.Count - 1).Select(i => (arrivals[i] - arrivals[i - 1]).TotalMilliseconds).ToList();
            var stalls = gaps.Where(g => g > 2000.0 / rps).ToList();
            double P(double q) => windows[(int)Math.Min(windows.Count - 1, Math.Floor(q * windows.Count))];
            Console.Error.WriteLine(
                $"drain: {rps}-gap spans beyond 1 s (ms): min {P(0):F0}, p10 {P(0.1):F0}, p50 {P(0.5):F0}, p90 {P(0.9):F0}, max {windows[^1]:F0}; " +
                $"{stalls.Count} gaps over {2000.0 / rps:F0} ms totalling {stalls.Sum() / 1000:F1} s of {(arrivals[^1] - arrivals[0]).TotalSeconds:F1} s; " +
                $"first {rps + 1} arrivals span {(arrivals[rps] - arrivals[0]).TotalMilliseconds:F0} ms, first 30 calls {(arrivals[Math.Min(29, arrivals.Count - 1)] - arrivals[0]).TotalSeconds:F2} s");
        }

        // Start (gong_calls.started_at, the worker's clock) to arrival at the simulator, per answered call: the
        // one-way delay the margin has to cover (same machine, same clock), and where the stalls were.
        var started = new Dictionary<string, (DateTimeOffset At, string Replica)>();
        await using (var connection = await database.OpenConnectionAsync())
        await using (var command = new Npgsql.NpgsqlCommand("SELECT gong_request_id, started_at, coalesce(replica, '') FROM gong_calls WHERE gong_request_id IS NOT NULL", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                started[reader.GetString(0)] = (reader.GetFieldValue<DateTimeOffset>(1), reader.GetString(2));
            }
        }

        var delays = log.Where(c => started.ContainsKey(c.RequestId)).Select(c => (c.Time - started[c.RequestId].At).TotalMilliseconds).Order().ToList();
        if (delays.Count > 0)
        {
            Console.Error.WriteLine($"drain: start to arrival (ms): min {delays[0]:F1}, p50 {Percentile(delays, 50):F1}, p90 {Percentile(delays, 90):F1}, p99 {Percentile(delays, 99):F1}, max {delays[^1]:F1}");
        }

        var ordered = log.OrderBy(c => c.Time).ToList();
        string Who(CallRecord c) => started.TryGetValue(c.RequestId, out var s) ? s.Replica : "?";
        var latest = ordered.Select((c, i) => (Call: c, Index: i + 1)).Where(x => started.ContainsKey(x.Call.RequestId))
            .OrderByDescending(x => x.Call.Time - started[x.Call.RequestId].At).Take(5);
        Console.Error.WriteLine("drain: latest arrivals after their start (ms, call #, replica): " + string.Join(", ", latest.Select(x =>
            $"{(x.Call.Time - started[x.Call.RequestId].At).TotalMilliseconds:F0} #{x.Index} {Who(x.Call).Replace("bench-replica-", "r", StringComparison.Ordinal)}")));
        Console.Error.WriteLine("drain: first calls (arrival s, replica): " + string.Join(", ", ordered.Take(12).Select(c => $"{(c.Time - arrivals[0]).TotalSeconds:F3} {Who(c).Replace("bench-replica-", "r", StringComparison.Ordinal)}")));
        for (var i = 1; i < ordered.Count; i++)
        {
            var gap = (ordered[i].Time - ordered[i - 1].Time).TotalMilliseconds;
            if (gap > 2000.0 / rps)
            {
                Console.Error.WriteLine($"drain: stall of {gap:F0} ms before call {i + 1} at {(ordered[i].Time - arrivals[0]).TotalSeconds:F2} s ({Who(ordered[i - 1])} -> {Who(ordered[i])})");
            }
        }

        var span = arrivals.Count > 1 ? (arrivals[^1] - arrivals[0]).TotalSeconds : 0;
        var callsPerSecond = span > 0 ? (arrivals.Count - 1) / span : 0;
        var bound = rps / (1 + (jitterMs / 1000.0));
        Console.Error.WriteLine($"drain: {assignCalls} assign calls (minimum {minimum}), {callsPerSecond:F2} calls/s of bound {bound:F2}, fill {meanFill:F1}, {stopwatch.Elapsed.TotalSeconds:F1} s");
        if (arrivals.Count > 60)
        {
            // Without the start (every replica young, its batch size not yet proven): the 30th arrival to the last.
            var after = (arrivals.Count - 30) / (arrivals[^1] - arrivals[29]).TotalSeconds;
            Console.Error.WriteLine($"drain: from the 30th arrival to the last: {after:F2} calls/s ({100 * after / bound:F1}% of {bound:F2}); the first 30 cost {(arrivals[29] - arrivals[0]).TotalSeconds - (29 / after):F2} s more than that pace");
        }

        var limit = rps == 3 ? "Gong's real limit, 3 calls/s" : $"raised limit {rps} calls/s (worker gate set equally)";
        var network = $"{replicas} replica{(replicas == 1 ? "" : "s")} ({(inProcess ? "hosts in one process" : "one process each")}) started together, arrival jitter 0-{jitterMs} ms, new-connection delay {connectDelayMs} ms";
        return
        [
            new(Name, "prospects drained", $"{N0(assigned)} / {N0(prospects)}", $"{groups} groups, {bodies.Count:N0} requests of 1-500, assigned / pending at start; {F(stopwatch.Elapsed.TotalSeconds, 1)} s; {limit}, sim latency 200-800 ms; {network}"),
            new(Name, "Gong assign calls / minimum", $"{assignCalls} / {minimum}", $"minimum = sum of ceil(n_group/200); {allCalls - assignCalls} lookups"),
            new(Name, "mean fill", F(meanFill, 1), "prospects per answered assign call (max 200)"),
            new(Name, "achieved calls/s", $"{F(callsPerSecond, 2)} ({F(100 * callsPerSecond / bound, 1)}% of {F(bound, 2)})", $"load average {loadBefore} before, {loadAfter} after; arrivals at the simulator, (calls-1) / first-to-last; bound R/(1+J) = {rps}/(1+{F(jitterMs / 1000.0, 3)}); sim max accepted in any 1 s: {stats.MaxAcceptedCallsInAnyOneSecond}"),
            new(Name, "429s (gong_calls / simulator / self-caused)", $"{throttled} / {stats.RateLimitedCalls} / {stats.SelfCausedRateLimited}", "expected 0 / 0 / 0"),
            new(Name, "duplicate assigns", stats.DuplicateOfApiAssignmentAttempts.ToString(Invariant), "simulator duplicateOfApiAssignmentAttempts; must be 0"),
        ];
    }

    /// <summary>Collects the heap and starts a region without GC for the largest budget the runtime grants (1 GiB down
    /// to 64 MiB); returns the budget in bytes, or 0 when none was granted.</summary>
    private static long StartNoGcRegion()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        for (long budget = 1L << 30; budget >= 64L << 20; budget /= 2)
        {
            try
            {
                if (GC.TryStartNoGCRegion(budget))
                {
                    return budget;
                }
            }
            catch (ArgumentOutOfRangeException)
            {
                // Larger than this runtime allows: try half.
            }
        }

        return 0;
    }

    /// <summary>A free loopback port (bound and released at once).</summary>
    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A worker process's <c>slots_reclaimed</c> / <c>slots_given_up</c> counters from its /metrics, or "?".</summary>
    private static async Task<string> GateSlotCountsAsync(int port)
    {
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var text = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"));
            string Counter(string name) => text.Split('\n').FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal))?.Split(' ')[1] ?? "0";
            return $"{Counter("flow_assignment_rate_gate_slots_reclaimed_total")} / {Counter("flow_assignment_rate_gate_slots_given_up_total")}";
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return "?";
        }
    }

    /// <summary>The 1-minute load average (<c>/proc/loadavg</c>), or "?" where there is none.</summary>
    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
