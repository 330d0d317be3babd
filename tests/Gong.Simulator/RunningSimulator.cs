using System.Net.Http.Headers;
using System.Text;

namespace Gong.Simulator;

/// <summary>A simulator started in-process by <see cref="GongSimulatorApp.StartAsync"/>; dispose to stop it.</summary>
public sealed class RunningSimulator : IAsyncDisposable
{
    private readonly WebApplication _app;

    internal RunningSimulator(WebApplication app, Uri baseUrl, SimulatorState state)
    {
        _app = app;
        BaseUrl = baseUrl;
        State = state;
    }

    /// <summary>Bound base URL, e.g. <c>http://127.0.0.1:41234/</c> (ends with a slash).</summary>
    public Uri BaseUrl { get; }

    /// <summary>The simulator's memory: assignments, call log, stats, faults.</summary>
    public SimulatorState State { get; }

    /// <summary>The <c>Authorization</c> header value for the configured access key and secret.</summary>
    public AuthenticationHeaderValue BasicAuthorization => new(
        "Basic",
        Convert.ToBase64String(Encoding.UTF8.GetBytes($"{State.Options.AccessKey}:{State.Options.AccessKeySecret}")));

    /// <summary>An HttpClient on <see cref="BaseUrl"/>, with Basic auth when <paramref name="authenticated"/>. The caller disposes it.</summary>
    public HttpClient CreateClient(bool authenticated = true)
    {
        var client = new HttpClient { BaseAddress = BaseUrl };
        if (authenticated)
        {
            client.DefaultRequestHeaders.Authorization = BasicAuthorization;
        }

        return client;
    }

    /// <summary>Stops listening (in-flight delayed answers are cancelled) and releases the port.</summary>
    public async ValueTask DisposeAsync()
    {
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            await _app.StopAsync(stop.Token).ConfigureAwait(false);
        }

        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
