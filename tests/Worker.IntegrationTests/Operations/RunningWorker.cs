using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Worker.Host;
using Worker.Testing;

namespace Worker.IntegrationTests.Operations;

/// <summary>
/// The worker host started in-process on a free loopback port, with every log line captured (<see cref="Logs"/>) and
/// Warning and above written to the test output.
/// </summary>
internal sealed class RunningWorker : IAsyncDisposable
{
    private RunningWorker(WebApplication app, Uri baseAddress, LogCapture logs)
    {
        App = app;
        Logs = logs;
        Http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public WebApplication App { get; }

    public HttpClient Http { get; }

    public LogCapture Logs { get; }

    /// <summary>Starts the host with <paramref name="settings"/> as command-line configuration (highest precedence).</summary>
    public static async Task<RunningWorker> StartAsync(
        IEnumerable<KeyValuePair<string, string?>> settings,
        Action<IServiceCollection>? configureServices = null,
        ITestOutputHelper? output = null)
    {
        var args = settings.Select(s => $"--{s.Key}={s.Value}").Append("--Urls=http://127.0.0.1:0").ToArray();
        var builder = WorkerHost.CreateBuilder(args);
        var logs = new LogCapture();
        builder.Logging.UseTestLog(new TestLog(output is null ? null : output.WriteLine));
        builder.Logging.AddProvider(logs);
        configureServices?.Invoke(builder.Services);
        var app = builder.Build();
        WorkerHost.MapEndpoints(app);
        await app.StartAsync();
        return new RunningWorker(app, new Uri(app.Urls.First()), logs);
    }

    /// <summary>A loopback port nothing listens on (bound then released).</summary>
    public static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="timeout"/> passes; returns the last value.</summary>
    public static async Task<T> EventuallyAsync<T>(Func<Task<T>> probe, Func<T, bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        while (true)
        {
            var value = await probe();
            if (condition(value) || DateTime.UtcNow > deadline)
            {
                return value;
            }

            await poll.WaitForNextTickAsync();
        }
    }

    public async Task<(HttpStatusCode Status, string Body)> GetAsync(string path)
    {
        using var response = await Http.GetAsync(new Uri(path, UriKind.Relative));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }

    /// <summary>Keeps every formatted message, exception text and scope of every log line.</summary>
    internal sealed class LogCapture : ILoggerProvider
    {
        public ConcurrentQueue<string> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => new CaptureLogger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class CaptureLogger(LogCapture owner, string category) : ILogger, ISupportExternalScope
        {
            private IExternalScopeProvider? scopes;

            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull
            {
                owner.Lines.Enqueue($"{category} scope: {state}");
                return scopes?.Push(state);
            }

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {state} {exception}");

            public void SetScopeProvider(IExternalScopeProvider scopeProvider) => scopes = scopeProvider;
        }
    }
}
