using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;

namespace Gong.Simulator.Tests;

/// <summary>One in-process simulator on a free loopback port, a client with valid credentials and a fake clock.</summary>
internal sealed class SimulatorHarness : IAsyncDisposable
{
    public const string FlowId = "1695493301223590792";
    public const string Owner = "jane.doe@example.com";

    private SimulatorHarness(RunningSimulator simulator, FakeTimeProvider time)
    {
        Simulator = simulator;
        Time = time;
        Client = simulator.CreateClient();
    }

    public RunningSimulator Simulator { get; }

    public FakeTimeProvider Time { get; }

    public HttpClient Client { get; }

    public SimulatorState State => Simulator.State;

    public static async Task<SimulatorHarness> StartAsync(Action<SimulatorOptions>? configure = null)
    {
        var options = new SimulatorOptions();
        configure?.Invoke(options);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 10, 0, 0, TimeSpan.Zero));
        var simulator = await GongSimulatorApp.StartAsync(options, timeProvider: time);
        return new SimulatorHarness(simulator, time);
    }

    public Task<HttpResponseMessage> AssignAsync(IEnumerable<string> ids, string flowId = FlowId, string owner = Owner, CancellationToken cancellationToken = default) =>
        Client.PostAsJsonAsync(
            "v2/flows/prospects/assign",
            new { crmProspectsIds = ids.ToArray(), flowId, flowInstanceOwnerEmail = owner },
            cancellationToken);

    public Task<HttpResponseMessage> LookupAsync(params string[] ids) =>
        Client.PostAsJsonAsync("v2/flows/prospects", new { crmProspectsIds = ids });

    public async Task<JsonElement> LookupJsonAsync(params string[] ids)
    {
        using var response = await LookupAsync(ids);
        Assert.Equal(200, (int)response.StatusCode);
        return await ReadJsonAsync(response);
    }

    public async Task<JsonElement> AssignJsonAsync(IEnumerable<string> ids, string flowId = FlowId, string owner = Owner)
    {
        using var response = await AssignAsync(ids, flowId, owner);
        Assert.Equal(200, (int)response.StatusCode);
        return await ReadJsonAsync(response);
    }

    public Task SetFaultsAsync(object faults) => PutAsync("_sim/faults", faults);

    public async Task PutAsync(string path, object body)
    {
        using var response = await Client.PutAsJsonAsync(path, body);
        response.EnsureSuccessStatusCode();
    }

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response)
    {
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.Clone();
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Simulator.DisposeAsync();
    }
}

/// <summary>Polls a condition until it holds or a deadline passes (no fixed sleeps).</summary>
internal static class Eventually
{
    public static async Task<T> GetAsync<T>(Func<Task<T?>> probe, TimeSpan? deadline = null)
        where T : class
    {
        var until = DateTime.UtcNow + (deadline ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            if (await probe() is { } value)
            {
                return value;
            }

            if (DateTime.UtcNow > until)
            {
                throw new TimeoutException("condition not met before the deadline");
            }

            await Task.Yield();
            await Task.Delay(20);
        }
    }
}
