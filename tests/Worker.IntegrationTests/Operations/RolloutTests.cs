using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Worker.Host.Operations;
using Worker.IntegrationTests.EndToEnd;
using Worker.Testing;
using static Worker.IntegrationTests.Operations.HealthAndMetricsTests;

namespace Worker.IntegrationTests.Operations;

/// <summary>What a rollout relies on: readiness that waits for migrations, checks that fit the replica's role, secrets that must be given, a health check for compose.</summary>
public sealed class RolloutTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Readiness_fails_naming_the_pending_migrations_until_migrate_runs_and_run_says_so_at_start()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateEmptyDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var worker = await RunningWorker.StartAsync(Settings(database.ConnectionString, vhost).Append(new("Dispatch:Enabled", "false")), output: output);

        var ready = await RunningWorker.EventuallyAsync(() => worker.GetAsync(HealthEndpoints.ReadyPath), r => Check(r.Body, "masstransit-bus").Status == "Healthy", Patience);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.Status);
        var migrations = Check(ready.Body, "migrations");
        Assert.Equal("Unhealthy", migrations.Status);
        Assert.Contains("database migration(s) pending", migrations.Description, StringComparison.Ordinal);
        Assert.Contains("InitialSchema", migrations.Description, StringComparison.Ordinal);
        Assert.Contains("migrate", migrations.Description, StringComparison.Ordinal);
        await RunningWorker.EventuallyAsync(
            () => Task.FromResult(worker.Logs.Lines.ToList()),
            lines => lines.Any(l => l.StartsWith("Error ", StringComparison.Ordinal) && l.Contains("Database schema is behind this version", StringComparison.Ordinal)),
            Patience);

        // A replica that does not dispatch has no dispatch check to fail.
        Assert.DoesNotContain(Checks(ready.Body), c => c.Name == "dispatch");

        await DatabaseMigrator.ApplyAsync(worker.App.Services, CancellationToken.None);
        var after = await RunningWorker.EventuallyAsync(() => worker.GetAsync(HealthEndpoints.ReadyPath), r => r.Status == HttpStatusCode.OK, Patience);
        Assert.True(after.Status == HttpStatusCode.OK, after.Body);
        Assert.Equal("Healthy", Check(after.Body, "migrations").Status);

        // Neither the check nor the start-up notice made EF log a failed command on the database without a history table.
        var historyErrors = worker.Logs.Lines.Where(l => l.Contains("Failed executing DbCommand", StringComparison.Ordinal) && l.Contains("__EFMigrationsHistory", StringComparison.Ordinal)).ToList();
        Assert.True(historyErrors.Count == 0, string.Join('\n', historyErrors));
    }

    [Fact]
    public async Task In_production_a_missing_secret_fails_fast_naming_the_setting()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var environment = MigrateAndTopologyTests.Environment(database, vhost);
        environment["DOTNET_ENVIRONMENT"] = "Production";
        environment["Gong__AccessKey"] = "key";
        environment["Gong__AccessKeySecret"] = "secret";
        environment["Urls"] = "http://127.0.0.1:0";
        environment["RabbitMq__Password"] = string.Empty;
        var run = await HostCommand.RunAsync(["run"], environment, TimeSpan.FromMinutes(1));
        Assert.True(run.ExitCode == 1, run.Text);
        Assert.Contains(run.Lines, l => l.Contains("RabbitMq:Password (RabbitMq__Password) is required.", StringComparison.Ordinal));

        environment["RabbitMq__Password"] = vhost.Password;
        environment["ConnectionStrings__Postgres"] = string.Empty;
        var status = await HostCommand.RunAsync(["status"], environment, TimeSpan.FromMinutes(1));
        Assert.True(status.ExitCode == 1, status.Text);
        Assert.Contains(status.Lines, l => l.Contains("ConnectionStrings:Postgres (environment variable ConnectionStrings__Postgres) is required", StringComparison.Ordinal));
        Assert.DoesNotContain(status.Lines, l => l.Contains("   at ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_healthcheck_subcommand_exits_0_against_a_ready_worker_process_and_1_otherwise()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var environment = MigrateAndTopologyTests.Environment(database, vhost);
        environment["Dispatch__Enabled"] = "false";
        environment["Gong__BaseUrl"] = $"http://127.0.0.1:{RunningWorker.ClosedPort()}";
        environment["Gong__AccessKey"] = "key";
        environment["Gong__AccessKeySecret"] = "secret";
        await using var worker = WorkerProcess.Start(environment);
        await worker.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));

        // Default URL: the port of the Urls setting (as the image sets it), on 127.0.0.1.
        var port = worker.Http.BaseAddress!.Port;
        var healthy = await HostCommand.RunAsync(["healthcheck"], new Dictionary<string, string> { ["Urls"] = $"http://+:{port}" }, TimeSpan.FromMinutes(1));
        Assert.True(healthy.ExitCode == 0, healthy.Text);
        Assert.Contains(healthy.Lines, l => l.Contains($"127.0.0.1:{port}{HealthEndpoints.ReadyPath}: 200", StringComparison.Ordinal));

        var closed = await HostCommand.RunAsync(["healthcheck", "--url", $"http://127.0.0.1:{RunningWorker.ClosedPort()}{HealthEndpoints.ReadyPath}"], new Dictionary<string, string>(), TimeSpan.FromMinutes(1));
        Assert.True(closed.ExitCode == 1, closed.Text);

        // Not ready (503) is a failure too: the same worker once its database is gone.
        await database.DisposeAsync();
        await RunningWorker.EventuallyAsync(
            () => HostCommand.RunAsync(["healthcheck", "--url", new Uri(worker.Http.BaseAddress, HealthEndpoints.ReadyPath).ToString()], new Dictionary<string, string>(), TimeSpan.FromMinutes(1)),
            r => r.ExitCode == 1 && r.Text.Contains(": 503", StringComparison.Ordinal),
            Patience);
    }

    private static List<(string Name, string Status, string Description)> Checks(string body) =>
        [.. JsonDocument.Parse(body).RootElement.GetProperty("checks").EnumerateArray().Select(c => (
            c.GetProperty("name").GetString()!,
            c.GetProperty("status").GetString()!,
            c.TryGetProperty("description", out var d) ? d.GetString() ?? string.Empty : string.Empty))];

    private static (string Status, string Description) Check(string body, string name)
    {
        var check = Checks(body).SingleOrDefault(c => c.Name == name);
        return check.Name is null ? ("missing", string.Empty) : (check.Status, check.Description);
    }
}
