using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Worker.IntegrationTests.Dispatch;
using Worker.Testing;

namespace Worker.IntegrationTests.Monitoring;

/// <summary>
/// A real Prometheus (Debian package <c>prometheus</c>, on PATH or in PROMETHEUS) on a free loopback port, with its own
/// temporary TSDB, scraping one target every second and evaluating the worker's alert rules
/// (<c>scripts/monitoring-rules.sh</c>) every second. Killed and deleted on dispose.
/// </summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process process;
    private readonly DirectoryInfo directory;
    private readonly ConcurrentQueue<string> output = new();

    private PrometheusServer(Process process, DirectoryInfo directory, Uri baseAddress)
    {
        this.process = process;
        this.directory = directory;
        Http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(10) };
    }

    public HttpClient Http { get; }

    public Uri BaseAddress => Http.BaseAddress!;

    public static async Task<PrometheusServer> StartAsync(Uri target)
    {
        var binary = Environment.GetEnvironmentVariable("PROMETHEUS") is { Length: > 0 } configured ? configured
            : (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator).Select(d => Path.Combine(d, "prometheus")).FirstOrDefault(File.Exists);
        Assert.True(binary is not null, "prometheus not found: install the Debian package prometheus (scripts/prometheus-up.sh) or set PROMETHEUS.");

        var directory = Directory.CreateTempSubdirectory("prometheus-test-");
        var rules = await RunAsync("bash", RepositoryRoot.Combine("scripts", "monitoring-rules.sh"));
        await File.WriteAllTextAsync(Path.Combine(directory.FullName, "rules.yaml"), rules);
        await File.WriteAllTextAsync(Path.Combine(directory.FullName, "prometheus.yml"), $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            rule_files:
              - rules.yaml
            scrape_configs:
              - job_name: gong-flow-worker
                static_configs:
                  - targets: ['{target.Authority}']
            """);

        var port = Operations.RunningWorker.ClosedPort().ToString(CultureInfo.InvariantCulture);
        var start = new ProcessStartInfo(binary!)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = directory.FullName,
        };
        foreach (var argument in new[]
                 {
                     $"--config.file={Path.Combine(directory.FullName, "prometheus.yml")}",
                     $"--storage.tsdb.path={Path.Combine(directory.FullName, "data")}",
                     $"--web.listen-address=127.0.0.1:{port}",
                     "--log.level=warn",
                 })
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        var server = new PrometheusServer(process, directory, new Uri($"http://127.0.0.1:{port}"));
        process.OutputDataReceived += (_, e) => server.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => server.Keep(e.Data);
        Assert.True(process.Start(), "prometheus started");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await Poll.UntilAsync(
            async () =>
            {
                Assert.False(process.HasExited, $"prometheus exited:\n{server.Tail()}");
                try
                {
                    using var ready = await server.Http.GetAsync(new Uri("/-/ready", UriKind.Relative));
                    return ready.StatusCode == HttpStatusCode.OK;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(30),
            "prometheus /-/ready");
        return server;
    }

    /// <summary>Runs an instant query; returns the API's status ("success" or "error"), the result series and the error text.</summary>
    public async Task<(string Status, IReadOnlyList<JsonElement> Series, string? Error)> QueryAsync(string expr)
    {
        using var response = await Http.GetAsync(new Uri("/api/v1/query?query=" + Uri.EscapeDataString(expr), UriKind.Relative));
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = json.RootElement;
        var status = root.GetProperty("status").GetString()!;
        if (status != "success")
        {
            return (status, [], root.TryGetProperty("error", out var error) ? error.GetString() : null);
        }

        var data = root.GetProperty("data");
        var series = data.GetProperty("resultType").GetString() == "vector"
            ? data.GetProperty("result").EnumerateArray().Select(e => e.Clone()).ToList()
            : [data.GetProperty("result").Clone()];
        return (status, series, null);
    }

    /// <summary>GET on an API path (e.g. <c>/api/v1/rules</c>), the <c>data</c> element of the answer.</summary>
    public async Task<JsonElement> GetDataAsync(string pathAndQuery)
    {
        using var response = await Http.GetAsync(new Uri(pathAndQuery, UriKind.Relative));
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.True(json.RootElement.GetProperty("status").GetString() == "success", json.RootElement.ToString());
        return json.RootElement.GetProperty("data").Clone();
    }

    public string Tail(int lines = 30) => string.Join(Environment.NewLine, output.TakeLast(lines));

    /// <summary>Stops Prometheus with SIGTERM (it flushes and exits in about a second), SIGKILL after 10 s; deletes its files.</summary>
    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        using (var term = Process.Start(new ProcessStartInfo("/bin/kill") { ArgumentList = { "-TERM", process.Id.ToString(CultureInfo.InvariantCulture) } })!)
        {
            await term.WaitForExitAsync();
        }

        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await process.WaitForExitAsync(patience.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
        directory.Delete(recursive: true);
    }

    private static async Task<string> RunAsync(string file, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var errors = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', arguments)}: {errors}");
        return output;
    }

    private void Keep(string? line)
    {
        if (line is not null)
        {
            output.Enqueue(line);
        }
    }
}
