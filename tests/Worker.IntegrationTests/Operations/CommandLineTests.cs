using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Npgsql;
using Worker.Host.Operations.Redrive;
using Worker.Testing;

namespace Worker.IntegrationTests.Operations;

/// <summary>
/// The command line as a new user meets it, each case a real process: <c>healthcheck --url</c>, exit code 2 for arguments
/// the parser refuses, and one clean line with exit code 1 (no stack trace) for a refused database login or a setting
/// that cannot be converted. Tests that only read the database share one (<see cref="DatabaseFixture"/>).
/// </summary>
public sealed class CommandLineTests(DatabaseFixture shared) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task Healthcheck_url_option_gets_that_endpoint_and_exits_0_on_200_1_on_503_and_2_when_it_is_no_url()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var app = builder.Build();
        app.MapGet("/health/ready", () => Results.Ok());
        app.MapGet("/down", () => Results.StatusCode(StatusCodes.Status503ServiceUnavailable));
        await app.StartAsync();
        var port = new Uri(app.Urls.First()).Port;
        var environment = new Dictionary<string, string>();

        var ready = await HostCommand.RunAsync(["healthcheck", "--url", $"http://127.0.0.1:{port}/health/ready"], environment, ProcessTimeout);
        Assert.True(ready.ExitCode == 0, $"exit {ready.ExitCode}:\n{ready.Text}");
        Assert.Contains(ready.Lines, l => l.Contains($"127.0.0.1:{port}/health/ready: 200", StringComparison.Ordinal));

        var down = await HostCommand.RunAsync(["healthcheck", "--url", $"http://127.0.0.1:{port}/down"], environment, ProcessTimeout);
        Assert.True(down.ExitCode == 1, $"exit {down.ExitCode}:\n{down.Text}");
        Assert.Contains(down.Lines, l => l.Contains(": 503", StringComparison.Ordinal));

        var bad = await HostCommand.RunAsync(["healthcheck", "--url", "not-a-url"], environment, ProcessTimeout);
        Assert.True(bad.ExitCode == 2, $"exit {bad.ExitCode}:\n{bad.Text}");
        Assert.Contains(bad.Lines, l => l.Contains("--url", StringComparison.Ordinal) && l.Contains("not-a-url", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--reason", "gate", "open")]
    [InlineData("--from", "redrive", "--dry-run", "--from", "notadate")]
    [InlineData("--to", "redrive", "--dry-run", "--to", "2026-13-45")]
    [InlineData("RetriesExhausted", "redrive", "--dry-run", "--error-code", "Bogus")]
    [InlineData("--error-code", "redrive", "--dry-run", "--error-code", "retriesexhausted")]
    public async Task Arguments_the_parser_refuses_exit_2_with_a_message_naming_the_option(string named, params string[] args)
    {
        var database = shared.Database;
        var environment = new Dictionary<string, string> { ["ConnectionStrings__Postgres"] = database.ConnectionString };

        var run = await HostCommand.RunAsync(args, environment, ProcessTimeout);

        Assert.True(run.ExitCode == 2, $"`{string.Join(' ', args)}` exited {run.ExitCode}:\n{run.Text}");
        Assert.Contains(named, run.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Redrive_error_code_names_every_allowed_value_and_accepts_each()
    {
        var database = shared.Database;
        var environment = new Dictionary<string, string> { ["ConnectionStrings__Postgres"] = database.ConnectionString, ["Logging__LogLevel__Default"] = "Warning" };

        var bogus = await HostCommand.RunAsync(["redrive", "--dry-run", "--error-code", "Bogus"], environment, ProcessTimeout);
        Assert.Equal(2, bogus.ExitCode);
        Assert.All(RedriveCommand.FailedErrorCodes, code => Assert.Contains(code, bogus.Text, StringComparison.Ordinal));

        List<string> every = ["redrive", "--dry-run"];
        foreach (var code in RedriveCommand.FailedErrorCodes)
        {
            every.AddRange(["--error-code", code]);
        }

        var accepted = await HostCommand.RunAsync(every, environment, ProcessTimeout);
        Assert.True(accepted.ExitCode == 0, $"exit {accepted.ExitCode}:\n{accepted.Text}");
        Assert.Contains("Dry run: nothing changed.", accepted.Lines);
    }

    [Fact]
    public async Task Migrate_with_a_wrong_password_prints_one_line_naming_the_connection_string_and_exits_1()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateEmptyDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var environment = MigrateAndTopologyTests.Environment(database, vhost);
        environment["ConnectionStrings__Postgres"] = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Password = "not-the-password" }.ConnectionString;

        var run = await HostCommand.RunAsync(["migrate"], environment, ProcessTimeout);

        Assert.True(run.ExitCode == 1, $"exit {run.ExitCode}:\n{run.Text}");
        Assert.Contains(run.Lines, l => l.Contains("ConnectionStrings:Postgres", StringComparison.Ordinal) && l.Contains("28P01", StringComparison.Ordinal));
        Assert.DoesNotContain("Unhandled exception", run.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-password", run.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_with_a_setting_that_cannot_be_converted_prints_one_line_naming_it_and_exits_1()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var environment = MigrateAndTopologyTests.Environment(database, vhost);
        environment["Urls"] = "http://127.0.0.1:0";
        environment["Gong__BaseUrl"] = "http://127.0.0.1:9";
        environment["Gong__AccessKey"] = "access-key";
        environment["Gong__AccessKeySecret"] = "access-key-secret";
        environment["Ingest__OutagePause"] = "abc";

        var run = await HostCommand.RunAsync(["run"], environment, ProcessTimeout);

        Assert.True(run.ExitCode == 1, $"exit {run.ExitCode}:\n{run.Text}");
        Assert.Contains(run.Lines, l => l.Contains("Ingest:OutagePause", StringComparison.Ordinal) && l.StartsWith("Invalid configuration", StringComparison.Ordinal));
        Assert.DoesNotContain("Unhandled exception", run.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Text, StringComparison.Ordinal);
    }
}
