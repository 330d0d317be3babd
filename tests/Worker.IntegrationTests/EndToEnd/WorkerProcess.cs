using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;

namespace Worker.IntegrationTests.EndToEnd;

/// <summary>
/// The worker as a real process: <c>dotnet Worker.Host.dll run</c> from the test's output folder (the worker is a
/// ProjectReference, so its dll, deps.json, runtimeconfig.json and appsettings.json are copied there), configured
/// through environment variables as in a container. Stops with a real SIGTERM.
/// </summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly ConcurrentQueue<string> output = new();

    private WorkerProcess(Process process, Uri baseAddress)
    {
        this.process = process;
        Http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(10) };
    }

    public HttpClient Http { get; }

    public int Id => process.Id;

    public bool HasExited => process.HasExited;

    public int ExitCode => process.ExitCode;

    /// <summary>Log levels of a worker process unless the test's environment names them: Warning (appsettings.json has MassTransit at Information).</summary>
    private static readonly KeyValuePair<string, string>[] QuietLogging =
    [
        new("Logging__LogLevel__Default", "Warning"),
        new("Logging__LogLevel__MassTransit", "Warning"),
    ];

    public static string HostDll => Path.Combine(AppContext.BaseDirectory, "Worker.Host.dll");

    public static WorkerProcess Start(IReadOnlyDictionary<string, string> environment)
    {
        Assert.True(File.Exists(HostDll), $"{HostDll} exists");
        Assert.True(File.Exists(Path.ChangeExtension(HostDll, ".runtimeconfig.json")), "Worker.Host.runtimeconfig.json is next to it");
        var port = Operations.RunningWorker.ClosedPort();
        var start = Operations.HostCommand.StartInfo(["run"], environment);

        // Tests log at Warning unless they ask for more (their own Logging__LogLevel__* entries win); the output is kept
        // for failure messages (Tail, Output), never written to the console.
        foreach (var (key, level) in QuietLogging)
        {
            if (!environment.ContainsKey(key))
            {
                start.Environment[key] = level;
            }
        }

        start.Environment["Urls"] = $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}";
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var worker = new WorkerProcess(process, new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}"));
        process.OutputDataReceived += (_, e) => worker.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => worker.Keep(e.Data);
        Assert.True(process.Start(), "worker process started");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    /// <summary>
    /// Environment of a worker process on its own database and vhost against a simulator at <paramref name="simulator"/>
    /// with its credentials, both limited to <paramref name="callsPerSecond"/>, and short dispatch and relay waits.
    /// </summary>
    public static Dictionary<string, string> SimulatorEnvironment(string connectionString, Worker.Testing.TestVirtualHost vhost, Uri simulator, int callsPerSecond)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["ConnectionStrings__Postgres"] = connectionString,
            ["Gong__BaseUrl"] = simulator.ToString(),
            ["Gong__AccessKey"] = "sim-access-key",
            ["Gong__AccessKeySecret"] = "sim-access-key-secret",
            ["Gong__RequestsPerSecond"] = callsPerSecond.ToString(CultureInfo.InvariantCulture),
            ["Gong__ReconcileDelay"] = "00:00:00.200",
            ["Dispatch__MaxBatchDelay"] = "00:00:00.200",
            ["Dispatch__PollInterval"] = "00:00:00.100",
            ["Relay__PollInterval"] = "00:00:00.200",
        };
        foreach (var (key, value) in vhost.ToWorkerConfiguration())
        {
            environment[key.Replace(":", "__", StringComparison.Ordinal)] = value!;
        }

        return environment;
    }

    /// <summary>The last lines the process wrote (stdout and stderr), for failure messages.</summary>
    public string Tail(int lines = 40) => string.Join(Environment.NewLine, output.TakeLast(lines));

    public IReadOnlyList<string> Output => [.. output];

    /// <summary>Polls <c>/health/ready</c> until 200; fails at once when the process exits first.</summary>
    public async Task WaitUntilReadyAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            Assert.False(process.HasExited, $"worker exited with {(process.HasExited ? process.ExitCode : 0)} before it was ready:\n{Tail()}");
            try
            {
                using var response = await Http.GetAsync(new Uri("/health/ready", UriKind.Relative));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            Assert.True(DateTime.UtcNow < deadline, $"worker not ready after {timeout}:\n{Tail()}");
            await Task.Delay(100);
        }
    }

    /// <summary>Sends SIGTERM (what Kubernetes and docker send; <see cref="Process.Kill()"/> would be SIGKILL).</summary>
    public async Task TerminateAsync()
    {
        using var kill = Process.Start(new ProcessStartInfo("/bin/kill") { ArgumentList = { "-TERM", process.Id.ToString(CultureInfo.InvariantCulture) }, UseShellExecute = false })!;
        await kill.WaitForExitAsync();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>Waits for the process to exit; false when it is still running after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        output.Enqueue(line);
        while (output.Count > 2000 && output.TryDequeue(out _))
        {
        }
    }
}
