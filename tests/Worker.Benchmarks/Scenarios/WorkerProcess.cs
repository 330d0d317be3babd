using System.Collections.Concurrent;
using System.Diagnostics;
using Worker.Testing;

namespace Worker.Benchmarks.Scenarios;

/// <summary>
/// The worker as a separate process: <c>dotnet Worker.Host.dll run</c> (the DLL given: <c>--worker-dll</c>, which
/// <c>scripts/bench.sh</c> sets to its ReadyToRun publish, else the Release build), settings as environment
/// variables (<c>:</c> becomes <c>__</c>), logging at Warning, at the default priority (<see cref="ProcessPriorityClass.Normal"/>,
/// below the simulator in the benchmark's process when that was started with a raised one). Keeps the last 40 output lines for error messages.
/// Disposing stops it with SIGTERM (graceful shutdown, up to 40 s), then kills it.
/// </summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> output = new();
    private TextWriter? logWriter;

    private WorkerProcess(Process process)
    {
        Process = process;
    }

    /// <summary>The running process.</summary>
    public Process Process { get; }

    /// <summary>The last 40 lines it wrote (stdout and stderr).</summary>
    public string Output => string.Join('\n', output);

    /// <summary>Starts <paramref name="dll"/> on the database and vhost with <paramref name="settings"/> (configuration keys).</summary>
    /// <param name="dll">The worker's Worker.Host.dll.</param>
    /// <param name="database">Its database.</param>
    /// <param name="vhost">Its RabbitMQ virtual host.</param>
    /// <param name="settings">Configuration keys (<c>Gong:BaseUrl</c> form), set as environment variables.</param>
    /// <param name="logFile">When set, every line the process writes is appended there and the worker's Gong
    /// and dispatch components log at Debug (each batch claimed, each call's rate-gate slot, slots moved or given up, late departures), not Warning.</param>
    public static WorkerProcess Start(string dll, TestDatabase database, TestVirtualHost vhost, IEnumerable<KeyValuePair<string, string>> settings, string? logFile = null)
    {
        // The process runs in the DLL's folder: a relative --worker-dll must not be resolved a second time from there.
        dll = Path.GetFullPath(dll);
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { dll, "run" },
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["ConnectionStrings__Postgres"] = database.ConnectionString;
        start.Environment["Urls"] = "http://127.0.0.1:0";
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        if (logFile is not null)
        {
            start.Environment["Logging__LogLevel__Worker.Host.Gong"] = "Debug";
            start.Environment["Logging__LogLevel__Worker.Host.Dispatch"] = "Debug";
        }
        foreach (var (key, value) in vhost.ToWorkerConfiguration().Select(kv => new KeyValuePair<string, string>(kv.Key, kv.Value ?? "")).Concat(settings))
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        var process = new Process { StartInfo = start };
        var worker = new WorkerProcess(process) { logWriter = logFile is null ? null : TextWriter.Synchronized(new StreamWriter(logFile, append: true) { AutoFlush = true }) };
        process.OutputDataReceived += (_, e) => worker.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => worker.Keep(e.Data);
        process.Start();

        // The simulator stands in for Gong's servers, which do not share the workers' CPUs. Started with a raised priority
        // (`nice -n -10 scripts/bench.sh …`, README), this process and the simulator in it keep it, while the workers run
        // at the default priority, as Postgres and RabbitMQ do: on a small machine the workers' load then does not
        // delay the simulator's door and show there as network jitter the workers would have to learn.
        process.PriorityClass = ProcessPriorityClass.Normal;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    /// <summary>Throws when the process has exited (with its output).</summary>
    public void ThrowIfExited()
    {
        if (Process.HasExited)
        {
            throw new InvalidOperationException($"The worker process exited with code {Process.ExitCode}:\n{Output}");
        }
    }

    /// <summary>The Release build of the worker in this repository.</summary>
    public static string FindWorkerDll()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Worker.sln")))
            {
                var dll = Path.Combine(dir.FullName, "src", "Worker.Host", "bin", "Release", "net10.0", "Worker.Host.dll");
                return File.Exists(dll)
                    ? dll
                    : throw new FileNotFoundException($"Build the worker first: dotnet build src/Worker.Host -c Release ({dll} is missing).");
            }
        }

        throw new DirectoryNotFoundException("Worker.sln not found above the benchmark binaries; pass --worker-dll=path.");
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!Process.HasExited)
            {
                // SIGTERM: the worker's graceful shutdown (releases its in-flight batches).
                using var term = System.Diagnostics.Process.Start("kill", ["-TERM", Process.Id.ToString(BenchSupport.Invariant)]);
                await term.WaitForExitAsync();
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(40));
                try
                {
                    await Process.WaitForExitAsync(wait.Token);
                }
                catch (OperationCanceledException)
                {
                    Process.Kill(entireProcessTree: true);
                }
            }
        }
        finally
        {
            Process.Dispose();
            logWriter?.Dispose();
        }
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        logWriter?.WriteLine(line);
        output.Enqueue(line);
        while (output.Count > 40)
        {
            output.TryDequeue(out _);
        }
    }
}
