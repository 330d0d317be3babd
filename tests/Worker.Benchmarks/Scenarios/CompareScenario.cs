using System.Diagnostics;
using Gong.Simulator;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Worker.Benchmarks.Baselines;
using Worker.Testing;
using static Worker.Benchmarks.Scenarios.BenchSupport;

namespace Worker.Benchmarks.Scenarios;

/// <summary>
/// The worker side by side with what a team would write instead (tests/Worker.Benchmarks/Baselines): a MassTransit
/// batch consumer and one call per message. The <c>drain</c> workload (requests of 1–500 prospects over G (flow, owner)
/// groups) is published while 1 or 2 replicas of each design run, against the simulator at Gong's real limit
/// (3 calls/s, latency 200–800 ms), once clean and once with faults (5% 5xx after commit, the first assign call a
/// 429 with Retry-After 2). Every run has its own database, vhost and simulator. Measured: assign calls Gong saw
/// against the minimum Σ⌈n_group/200⌉, mean fill of answered calls, time from the first publish to the last outcome
/// recorded, 429s, prospects assigned twice (simulator <c>duplicateOfApiAssignmentAttempts</c>), prospects with no
/// recorded outcome, recorded outcomes that contradict Gong's state (Assigned recorded but not in the flow, or the
/// reverse) and prospects not in their flow at the end.
/// Options: <c>--compare-groups=G</c> (20), <c>--compare-prospects=N</c> (10,000), <c>--compare-designs=</c>
/// (<c>worker,batch,per-message</c>), <c>--compare-replicas=</c> (<c>1,2</c>), <c>--compare-permit-ms=M</c> (the
/// baselines' limiter hands out one permit every M ms; 350), <c>--compare-timeline=true</c> (every call Gong saw,
/// seconds after the first publish, on stderr).
/// </summary>
internal sealed class CompareScenario : IScenario
{
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(5);

    private enum Design
    {
        Worker,
        BatchConsumer,
        PerMessage,
    }

    public string Name => "compare";

    public string Description => "the drain workload through this worker, a MassTransit batch consumer and one call per message (1 and 2 replicas, clean and with faults)";

    public async Task<IReadOnlyList<ResultRow>> RunAsync(ScenarioContext context, CancellationToken cancellationToken)
    {
        var groups = context.GetInt("compare-groups", 20);
        var total = context.GetInt("compare-prospects", 10_000);
        var designs = (context.GetString("compare-designs") ?? "worker,batch,per-message").Split(',', StringSplitOptions.TrimEntries);
        var replicaCounts = (context.GetString("compare-replicas") ?? "1,2").Split(',').Select(r => int.Parse(r, Invariant)).ToArray();
        var settings = new RunSettings(
            context.GetString("compare-timeline") == "true",
            TimeSpan.FromMilliseconds(context.GetInt("compare-permit-ms", (int)BaselineHost.DefaultPermitInterval.TotalMilliseconds)));
        var requests = DrainWorkload.Create(groups, total);
        var minimum = DrainWorkload.MinimumCalls(requests);
        Console.Error.WriteLine($"compare: {requests.Count} requests, {requests.Sum(r => r.ProspectIds.Count)} prospects over {groups} groups; minimum {minimum} calls");

        var runs = new List<(Design Design, int Replicas, bool Faults, Result Result)>();
        foreach (var faults in new[] { false, true })
        {
            foreach (var design in Enum.GetValues<Design>().Where(d => designs.Contains(OptionName(d))))
            {
                foreach (var replicas in replicaCounts)
                {
                    var result = await RunOnceAsync(context.Services, design, replicas, faults, requests, settings);
                    Console.Error.WriteLine($"compare: {Label(design)}, {replicas} replica(s), {(faults ? "faults" : "clean")}: {result}");
                    runs.Add((design, replicas, faults, result));
                }
            }
        }

        Console.WriteLine($"compare: {requests.Count} requests, {requests.Sum(r => r.ProspectIds.Count):N0} prospects, {groups} groups; Gong 3 calls/s, latency 200-800 ms; faults = 5% 5xx after commit + one 429 (Retry-After 2)");
        Console.WriteLine("| design | replicas | faults | assign calls / minimum | mean fill | time to drain | 429s | assigned twice | no outcome | outcome contradicts Gong | not in flow |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var (design, replicas, faults, r) in runs)
        {
            Console.WriteLine($"| {Label(design)} | {replicas} | {(faults ? "yes" : "no")} | {r.AssignCalls} / {minimum}{(r.Lookups > 0 ? $" (+{r.Lookups} lookups)" : "")} | {F(r.MeanFill, 1)} | {r.DrainTime} | {r.Throttled} | {r.AssignedTwice} | {r.NoOutcome} | {r.Contradicting} | {r.NotInFlow} |");
        }

        return runs.Select(run => new ResultRow(
            Name,
            $"{Label(run.Design)}, {run.Replicas} replica(s), {(run.Faults ? "faults" : "clean")}",
            $"{run.Result.AssignCalls} / {minimum} calls, fill {F(run.Result.MeanFill, 1)}, {run.Result.DrainTime}",
            $"429s {run.Result.Throttled}, assigned twice {run.Result.AssignedTwice}, no outcome {run.Result.NoOutcome}, contradicts Gong {run.Result.Contradicting}, not in flow {run.Result.NotInFlow}"))
            .ToList();
    }

    private static string OptionName(Design design) => design switch
    {
        Design.Worker => "worker",
        Design.BatchConsumer => "batch",
        _ => "per-message",
    };

    private static string Label(Design design) => design switch
    {
        Design.Worker => "this worker",
        Design.BatchConsumer => "MassTransit batch consumer",
        _ => "one call per message",
    };

    private static async Task<Result> RunOnceAsync(
        TestServices services, Design design, int replicas, bool faults, IReadOnlyList<DrainWorkload.Request> requests, RunSettings settings)
    {
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var simulator = await GongSimulatorApp.StartAsync(new SimulatorOptions
        {
            RateLimit = new RateLimitOptions { RequestsPerSecond = 3, DailyCallLimit = 0 },
            Faults = new FaultOptions
            {
                LatencyMinMs = 200,
                LatencyMaxMs = 800,
                ErrorAfterCommitRate = faults ? 0.05 : 0,
                Script = faults ? [new ScriptedFault { Kind = FaultKind.RateLimited, RetryAfterSeconds = 2 }] : [],
            },
        });

        // Outcomes: the worker's final prospect rows, or the baseline's own table.
        var (table, finalOnly, recordedAt) = design == Design.Worker
            ? ("prospect_assignments", "WHERE status NOT IN ('Pending', 'InFlight')", "completed_at")
            : ("baseline_outcomes", "", "recorded_at");
        Func<Task<IAsyncDisposable>> start;
        if (design == Design.Worker)
        {
            var workerSettings = GongSettings(simulator, 3).Select(kv => $"--{kv.Key}={kv.Value}").ToList();

            // The same 10 s per-attempt timeout as the baselines' standard resilience handler. The worker looks up an
            // unknown outcome only once that call can no longer commit (start + AttemptTimeout + ReconcileDelay); with
            // the 90 s production default the faults runs would outlast the scenario's 20 s quiet window.
            workerSettings.Add("--Gong:AttemptTimeout=00:00:10");
            start = () => StartWorkerAsync(database, vhost, workerSettings);
        }
        else
        {
            await BaselineHost.CreateOutcomeTableAsync(database.ConnectionString);
            var kind = design == Design.BatchConsumer ? BaselineKind.BatchConsumer : BaselineKind.PerMessage;
            start = async () =>
            {
                var host = await BaselineHost.StartAsync(kind, database.ConnectionString, vhost, simulator.BaseUrl, simulator.BasicAuthorization, settings.PermitInterval);
                return new AsyncDisposable(async () =>
                {
                    await host.StopAsync();
                    host.Dispose();
                });
            };
        }

        var pairs = requests.Sum(r => r.ProspectIds.Count);
        long done = 0;
        double startedAt;
        var running = new List<IAsyncDisposable>();
        try
        {
            for (var i = 0; i < replicas; i++)
            {
                running.Add(await start());
            }

            // Published while the replicas run, so the broker spreads the messages over them as it would in production.
            startedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
            await PublishAsync(vhost, requests.Select(r => r.ToPlainJson()).ToList());

            // Until every prospect has an outcome, or nothing moved (no outcome, no call) for a while.
            var clock = Stopwatch.StartNew();
            var quiet = Stopwatch.StartNew();
            var last = (Done: -1L, Calls: -1);
            while (clock.Elapsed < Limit)
            {
                done = await ScalarAsync<long>(database, $"SELECT count(*) FROM {table} {finalOnly}");
                if (done >= pairs)
                {
                    break;
                }

                var now = (done, simulator.State.GetStats().TotalCalls);
                if (now != last)
                {
                    (last, quiet) = (now, Stopwatch.StartNew());
                }
                else if (quiet.Elapsed > Quiet)
                {
                    break;
                }

                await Task.Delay(250);
            }
        }
        finally
        {
            foreach (var replica in running)
            {
                await replica.DisposeAsync();
            }
        }

        var lastOutcome = await ScalarAsync<double>(database, $"SELECT coalesce(extract(epoch FROM max({recordedAt})), 0)::float8 FROM {table} {finalOnly}");
        var calls = simulator.State.GetCalls();
        var answered = calls.Where(c => c.Endpoint == SimulatorEndpoints.Assign && c.Status == 200).ToList();
        var stats = simulator.State.GetStats();
        if (settings.Timeline)
        {
            foreach (var c in calls)
            {
                Console.Error.WriteLine($"  {c.Time.ToUnixTimeMilliseconds() / 1000.0 - startedAt:F3} {c.Endpoint} {c.IdsCount} {c.Status} {c.DurationMs:F0}ms {c.Fault}");
            }
        }

        // Gong's state at the end against what was recorded.
        var inFlow = simulator.State.FindOpenInstances(requests.SelectMany(r => r.ProspectIds))
            .Select(f => (f.CrmProspectId, f.FlowId)).ToHashSet();
        var contradicting = 0;
        await using (var connection = await database.OpenConnectionAsync())
        await using (var command = new NpgsqlCommand($"SELECT crm_prospect_id, flow_id, status FROM {table} {finalOnly}", connection))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                if ((reader.GetString(2) == "Assigned") != inFlow.Contains((reader.GetString(0), reader.GetString(1))))
                {
                    contradicting++;
                }
            }
        }

        var drained = done >= pairs;
        var seconds = lastOutcome > 0 ? lastOutcome - startedAt : double.NaN;
        return new Result(
            calls.Count(c => c.Endpoint == SimulatorEndpoints.Assign),
            calls.Count(c => c.Endpoint == SimulatorEndpoints.Lookup),
            answered.Count == 0 ? 0 : answered.Average(c => c.IdsCount),
            drained ? $"{F(seconds, 1)} s" : $"not drained (last outcome at {F(seconds, 1)} s)",
            stats.RateLimitedCalls,
            stats.DuplicateOfApiAssignmentAttempts,
            pairs - done,
            contradicting,
            requests.Sum(r => r.ProspectIds.Count(id => !inFlow.Contains((id, r.FlowId)))));
    }

    /// <summary>Options every run shares: print the call timeline; the baselines' permit interval.</summary>
    private sealed record RunSettings(bool Timeline, TimeSpan PermitInterval);

    /// <summary>One run's figures.</summary>
    private sealed record Result(
        int AssignCalls, int Lookups, double MeanFill, string DrainTime, int Throttled, int AssignedTwice, long NoOutcome, int Contradicting, int NotInFlow);
}
