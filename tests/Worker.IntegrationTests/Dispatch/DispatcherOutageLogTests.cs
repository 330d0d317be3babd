using Gong.Simulator;
using Npgsql;
using Worker.IntegrationTests.EndToEnd;
using Worker.Testing;
using Xunit.Abstractions;

namespace Worker.IntegrationTests.Dispatch;

/// <summary>
/// A database outage under a running worker process: the dispatcher logs one Warning (with the exception) when its
/// turns start failing and one Information when they work again, not an Error with a stack trace every turn.
/// </summary>
public sealed class DispatcherOutageLogTests(ITestOutputHelper output)
{
    private const string Failing = "Dispatch turns fail";
    private const string Recovered = "Dispatch turns work again";

    [Fact]
    public async Task A_database_outage_logs_one_warning_when_dispatch_turns_start_failing_and_one_information_when_they_work_again()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var target = new NpgsqlConnectionStringBuilder(database.ConnectionString);
        await using var proxy = new Worker.Testing.TcpProxy(target.Host!, target.Port);
        var throughProxy = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port, Timeout = 2 };
        var options = new SimulatorOptions();
        options.RateLimit.RequestsPerSecond = 20;
        await using var simulator = await GongSimulatorApp.StartAsync(options, "http://127.0.0.1:0");
        var environment = WorkerProcess.SimulatorEnvironment(throughProxy.ConnectionString, vhost, simulator.BaseUrl, 20);
        environment["Logging__LogLevel__Default"] = "Warning";
        environment["Logging__LogLevel__Worker.Host.Dispatch.DispatcherService"] = "Information";

        await using var worker = WorkerProcess.Start(environment);
        await worker.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));

        proxy.Cut();
        await Poll.UntilAsync(() => Task.FromResult(worker.Output.Any(l => l.Contains(Failing, StringComparison.Ordinal))), TimeSpan.FromSeconds(30), "the dispatcher noticed the outage");
        await Task.Delay(TimeSpan.FromSeconds(8)); // several failing turns (ErrorBackoff 1 s, connect timeout 2 s)
        proxy.Restore();
        await Poll.UntilAsync(() => Task.FromResult(worker.Output.Any(l => l.Contains(Recovered, StringComparison.Ordinal))), TimeSpan.FromSeconds(30), "the dispatcher noticed the recovery");

        var lines = worker.Output;
        var dispatcher = lines.Where(l => l.Contains("DispatcherService", StringComparison.Ordinal)).ToList();
        foreach (var line in dispatcher)
        {
            output.WriteLine(line);
        }

        var failing = Assert.Single(lines, l => l.Contains(Failing, StringComparison.Ordinal));
        Assert.Contains("\"LogLevel\":\"Warning\"", failing, StringComparison.Ordinal);
        Assert.Contains("Exception", failing, StringComparison.Ordinal);
        var recovered = Assert.Single(lines, l => l.Contains(Recovered, StringComparison.Ordinal));
        Assert.Contains("\"LogLevel\":\"Information\"", recovered, StringComparison.Ordinal);
        Assert.DoesNotContain(dispatcher, l => l.Contains("\"LogLevel\":\"Error\"", StringComparison.Ordinal));
    }
}
