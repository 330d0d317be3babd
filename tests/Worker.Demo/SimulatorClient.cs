using System.Net.Http.Json;

namespace Worker.Demo;

/// <summary>The Gong simulator's admin API: seeding prospects into an exclusive flow, reading its stats.</summary>
internal sealed class SimulatorClient(Uri baseUrl) : IAsyncDisposable
{
    private readonly HttpClient http = new() { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(10) };

    public async Task SeedExclusiveAsync(string flowId, IReadOnlyList<string> prospects, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync("/_sim/seed", new { flowId, exclusive = true, crmProspectIds = prospects }, cancellationToken);
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
