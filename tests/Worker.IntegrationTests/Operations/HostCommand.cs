using System.Diagnostics;
using Worker.IntegrationTests.EndToEnd;

namespace Worker.IntegrationTests.Operations;

/// <summary>One run of a worker subcommand as a real process (<c>dotnet Worker.Host.dll &lt;args&gt;</c>), environment as in a container.</summary>
internal sealed record HostCommandResult(int ExitCode, IReadOnlyList<string> Lines)
{
    public string Text => string.Join(Environment.NewLine, Lines);

    /// <summary>JSON log lines at Error or Critical level.</summary>
    public IReadOnlyList<string> ErrorLines => [.. Lines.Where(l => l.Contains("\"LogLevel\":\"Error\"", StringComparison.Ordinal) || l.Contains("\"LogLevel\":\"Critical\"", StringComparison.Ordinal))];
}

internal static class HostCommand
{
    /// <summary>Starts the process; the returned task ends with its exit code and every line it wrote (stdout and stderr).</summary>
    public static async Task<HostCommandResult> RunAsync(IReadOnlyList<string> args, IReadOnlyDictionary<string, string> environment, TimeSpan timeout)
    {
        var start = StartInfo(args, environment);

        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Keep(lines, e.Data);
        process.ErrorDataReceived += (_, e) => Keep(lines, e.Data);
        Assert.True(process.Start(), "process started");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"`{string.Join(' ', args)}` still running after {timeout}:\n{string.Join('\n', lines)}");
        }

        process.WaitForExit();
        return new HostCommandResult(process.ExitCode, [.. lines]);
    }

    /// <summary><c>dotnet Worker.Host.dll &lt;args&gt;</c> from the test output folder, output redirected, in a neutral working directory.</summary>
    public static ProcessStartInfo StartInfo(IReadOnlyList<string> args, IReadOnlyDictionary<string, string> environment)
    {
        var muxer = Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
        var start = new ProcessStartInfo(muxer)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        start.ArgumentList.Add(WorkerProcess.HostDll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        // What the test run's own environment holds (scripts/services-up.sh exports the worker's settings) must not fill in
        // a setting a test leaves out on purpose: the empty string is removed.
        foreach (var key in environment.Where(e => e.Value.Length == 0).Select(e => e.Key))
        {
            start.Environment.Remove(key);
        }

        return start;
    }

    private static void Keep(System.Collections.Concurrent.ConcurrentQueue<string> lines, string? line)
    {
        if (line is not null)
        {
            lines.Enqueue(line);
        }
    }
}
