using Gong.Simulator;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Host.Operations;

namespace Worker.IntegrationTests.Gong;

/// <summary>One worker replica's Gong client (the real registrations of <c>AddGongClient</c>) on a test database.</summary>
internal sealed class GongReplica : IAsyncDisposable
{
    public const string FlowId = "1695493301223590792";
    public const string Owner = "owner@example.com";

    private readonly IHost host;

    private GongReplica(IHost host) => this.host = host;

    public IGongBatchSender Sender => host.Services.GetRequiredService<IGongBatchSender>();

    public IGongDispatchState State => host.Services.GetRequiredService<IGongDispatchState>();

    internal PostgresRateGate Gate => host.Services.GetRequiredService<PostgresRateGate>();

    public IServiceProvider Services => host.Services;

    public static async Task<GongReplica> StartAsync(
        string connectionString,
        string baseUrl,
        TimeProvider time,
        IEnumerable<KeyValuePair<string, string?>>? settings = null,
        Action<IServiceCollection>? configure = null)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Gong:BaseUrl"] = baseUrl,
            ["Gong:AccessKey"] = "test-key",
            ["Gong:AccessKeySecret"] = "test-secret",
        });
        if (time is FakeTimeProvider)
        {
            // A fake clock cannot be compared with the database's; and it moves in steps of up to 20 ms, so a caller
            // may wake that late for its slot: the base margin must tolerate it (half of it is the late tolerance).
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Gong:RateGateClock"] = "Local",
                ["Gong:RateWindowMargin"] = "00:00:00.050",
            });
        }

        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        builder.Services.AddSingleton(time);
        builder.Services.AddLogging();
        builder.Services.AddMetrics();
        builder.Services.AddSingleton<WorkerMetrics>();
        builder.Services.AddNpgsqlDataSource(connectionString);
        builder.AddGongClient();
        configure?.Invoke(builder.Services);
        var host = builder.Build();
        await host.StartAsync();
        return new GongReplica(host);
    }

    /// <summary>Starts the in-process simulator with the replicas' credentials, counting arrivals against
    /// <paramref name="requestsPerSecond"/> in any sliding second (no daily limit), after settling the test process's
    /// heap (<see cref="HeapSettle"/>).</summary>
    public static Task<RunningSimulator> StartSimulatorAsync(int requestsPerSecond)
    {
        HeapSettle.Now();
        return GongSimulatorApp.StartAsync(new SimulatorOptions
        {
            AccessKey = "test-key",
            AccessKeySecret = "test-secret",
            RateLimit = new RateLimitOptions { RequestsPerSecond = requestsPerSecond, DailyCallLimit = 0 },
        });
    }

    /// <summary>Sends one-prospect batches (ids <paramref name="prefix"/>0001…) on three concurrent sends until
    /// <paramref name="simulator"/> has counted <paramref name="calls"/> calls; returns each prospect's result kind.</summary>
    public async Task<IReadOnlyCollection<ProspectResultKind>> SendOneByOneAsync(RunningSimulator simulator, int calls, string prefix)
    {
        var sequence = 0;
        var outcomes = new System.Collections.Concurrent.ConcurrentBag<ProspectResultKind>();
        await Task.WhenAll(Enumerable.Range(0, 3).Select(async _ =>
        {
            while (simulator.State.GetStats().TotalCalls < calls)
            {
                var id = $"{prefix}{Interlocked.Increment(ref sequence):0000}";
                var result = await Sender.SendAsync(Batch([id]), CancellationToken.None);
                outcomes.Add(Xunit.Assert.Single(result.Prospects).Kind);
            }
        }));
        return outcomes;
    }

    /// <summary>The simulator's call log as "seconds from the first arrival:status" pairs (what a failure prints).</summary>
    public static string ArrivalLog(RunningSimulator simulator)
    {
        var calls = simulator.State.GetCalls();
        return string.Join(" ", calls.Select(c => $"{(c.Time - calls[0].Time).TotalSeconds:0.000}:{c.Status}"));
    }

    public static AssignmentBatch Batch(IEnumerable<string> ids, IEnumerable<string>? reconcileFirst = null) =>
        new(Guid.NewGuid(), FlowId, Owner, ids.ToList(), new HashSet<string>(reconcileFirst ?? [], StringComparer.Ordinal));

    public static IReadOnlyList<string> Ids(string prefix, int count) =>
        Enumerable.Range(1, count).Select(i => $"{prefix}{i:000}").ToList();

    public async ValueTask DisposeAsync()
    {
        await host.StopAsync();
        host.Dispose();
    }
}

/// <summary>Moves a fake clock forward while a task runs, so waits on the clock (gate slots, Retry-After, Polly
/// timeouts and delays) pass without real waiting. Fails after a real-time deadline.</summary>
internal static class FakeClock
{
    public static FakeTimeProvider Create() => new(DateTimeOffset.UtcNow);

    public static async Task<T> DriveAsync<T>(this FakeTimeProvider clock, Task<T> task, TimeSpan? step = null)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (!task.IsCompleted)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("The task did not complete while the fake clock was driven.");
            }

            await Task.WhenAny(task, Task.Delay(5));
            if (!task.IsCompleted)
            {
                // Steps below half the gate margin (25 ms): a caller never wakes "late" for its slot.
                clock.Advance(step ?? TimeSpan.FromMilliseconds(20));
            }
        }

        return await task;
    }

    public static async Task DriveAsync(this FakeTimeProvider clock, Task task, TimeSpan? step = null) =>
        await clock.DriveAsync(task.ContinueWith(t => { t.GetAwaiter().GetResult(); return true; }, TaskScheduler.Default), step);
}
