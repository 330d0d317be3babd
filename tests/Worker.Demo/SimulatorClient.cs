using System.Net.Http.Json;

namespace Worker.Demo;

/// <summary>The Gong simulator's admin API: seeding prospects into an exclusive flow, reading its stats.</summary>
internal sealed class SimulatorClient(Uri baseUrl) : IAsyncDisposable
{
    private readonly HttpClient http = new() { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(10) };

    public async Task SeedExclusiveAsync(string flowId, IReadOnlyList<string> prospects, CancellationToken cancellationToken)
    {
        // The flow is declared exclusive in the simulator's start options (scripts/demo.sh).
        var seeds = prospects.Select(id => new { crmProspectId = id, flowId, ownerEmail = "seed-owner@example.com", status = "Running" });
        using var response = await http.PostAsJsonAsync("/_sim/assignments", seeds, cancellationToken);
        response.EnsureSuccessStatusCode();
    }

    public async Task<string?> TryGetStatsAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await http.GetStringAsync(new Uri("/_sim/stats", UriKind.Relative), cancellationToken);
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    public ValueTask DisposeAsync()
    {
        http.Dispose();
        return ValueTask.CompletedTask;
    }
}
