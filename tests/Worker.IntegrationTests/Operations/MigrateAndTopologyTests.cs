using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Worker.Contracts;
using Worker.Host.Messaging;
using Worker.IntegrationTests.Dispatch;
using Worker.IntegrationTests.EndToEnd;
using Worker.Testing;

namespace Worker.IntegrationTests.Operations;

/// <summary>
/// <c>migrate</c> and <c>topology</c> as real processes: concurrent migrations on an empty database, a quiet log on a
/// fresh database, and a broker topology that keeps requests published before any worker runs.
/// </summary>
public sealed class MigrateAndTopologyTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Two_migrate_processes_started_together_on_an_empty_database_both_exit_0_without_error_lines()
    {
        var services = await TestServices.GetAsync();
        for (var round = 1; round <= 5; round++)
        {
            await using var database = await services.CreateEmptyDatabaseAsync();
            await using var vhost = await services.CreateVirtualHostAsync();
            var environment = Environment(database, vhost);
            var runs = await Task.WhenAll(
                HostCommand.RunAsync(["migrate"], environment, ProcessTimeout),
                HostCommand.RunAsync(["migrate"], environment, ProcessTimeout));

            foreach (var run in runs)
            {
                Assert.True(run.ExitCode == 0, $"round {round}: migrate exited {run.ExitCode}:\n{run.Text}");
                Assert.True(run.ErrorLines.Count == 0, $"round {round}: error-level lines on a fresh database:\n{string.Join('\n', run.ErrorLines)}");
                Assert.Contains("Broker topology declared.", run.Lines);
            }

            // The advisory lock serialises them: one applies everything, the other then finds nothing to do.
            Assert.Single(runs, r => r.Lines.Any(l => l.StartsWith("Applied ", StringComparison.Ordinal)));
            Assert.Single(runs, r => r.Lines.Contains("Database is up to date."));
            await using var db = database.CreateDbContext();
            Assert.Empty(await db.Database.GetPendingMigrationsAsync());
            Assert.NotEmpty(await db.Database.GetAppliedMigrationsAsync());
        }
    }

    [Fact]
    public async Task Requests_published_before_any_worker_starts_wait_in_the_queue_and_each_gets_one_event_once_a_worker_runs()
    {
        var services = await TestServices.GetAsync();
        const string flow = "1695493301223590777";
        var enveloped = EndToEndWorld.Ids("early-a-", 30);
        var plain = EndToEndWorld.Ids("early-b-", 5);
        await using var world = await EndToEndWorld.StartAsync(
            settings: ["--RabbitMq:UseQuorumQueues=true"],
            beforeWorkerStarts: async w =>
            {
                var environment = Environment(w.Database, w.VirtualHost);
                environment["RabbitMq__UseQuorumQueues"] = "true";
                var topology = await HostCommand.RunAsync(["migrate"], environment, ProcessTimeout);
                Assert.True(topology.ExitCode == 0, topology.Text);

                await w.PublishAsync(new AssignProspectsToFlow("early-enveloped-1", flow, "owner@example.com", enveloped));
                await w.PublishPlainJsonAsync(EndToEndWorld.PlainJson("early-plain-1", flow, "owner@example.com", plain));
                await w.PublishPlainJsonAsync("""{"flowId":"1","crmProspectIds":["x"]}""");

                // No worker has run yet: the broker holds all three (a publisher's own exchange alone would drop them).
                await Poll.UntilAsync(async () => await QueueAsync(services, w.VirtualHost, "assign-prospects-to-flow") is { } q && q.Messages == 3,
                    TimeSpan.FromSeconds(30), "the three requests wait in assign-prospects-to-flow");
                var queue = await QueueAsync(services, w.VirtualHost, "assign-prospects-to-flow");
                Assert.Equal("quorum", queue!.Type);
                Assert.Equal("quorum", (await QueueAsync(services, w.VirtualHost, BrokerTopology.ErrorQueueName))!.Type);
            }, output: output);

        await world.WaitForEventsAsync(["early-enveloped-1", "early-plain-1"], TimeSpan.FromSeconds(90));
        foreach (var requestId in new[] { "early-enveloped-1", "early-plain-1" })
        {
            var (message, _) = await world.AssertEventMatchesTableAsync(requestId);
            Assert.Equal(RequestStatus.Succeeded, message.Status);
        }

        // The request without a requestId goes to the error queue declared by migrate (MassTransit's own declaration agrees with it).
        await Poll.UntilAsync(async () => await QueueAsync(services, world.VirtualHost, BrokerTopology.ErrorQueueName) is { Messages: 1 },
            TimeSpan.FromSeconds(30), "one message in the error queue");
        Assert.Equal(0, world.Simulator.State.GetStats().DuplicateOfApiAssignmentAttempts);
        await using var db = world.Database.CreateDbContext();
        Assert.Equal(enveloped.Length + plain.Length, await db.ProspectAssignments.CountAsync());
        Assert.Equal(0, await db.ProspectAssignments.CountAsync(p => p.CompletedAt == null));
    }

    [Theory]
    [InlineData("Production")]
    [InlineData("Development")]
    public async Task Migrate_declares_the_topology_in_every_environment(string environmentName)
    {
        // Development validates the service provider at build time (what scripts/demo.sh and `dotnet run` use): the
        // topology-only host must build there too.
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateEmptyDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var environment = Environment(database, vhost);
        environment["DOTNET_ENVIRONMENT"] = environmentName;
        var run = await HostCommand.RunAsync(["migrate"], environment, ProcessTimeout);
        Assert.True(run.ExitCode == 0, $"migrate ({environmentName}) exited {run.ExitCode}:\n{run.Text}");
        Assert.Contains("Broker topology declared.", run.Lines);
    }

    [Fact]
    public async Task Topology_exits_1_naming_the_settings_when_the_broker_refuses_the_login()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var environment = Environment(database, vhost);
        environment["RabbitMq__Password"] = "wrong-password";
        var run = await HostCommand.RunAsync(["topology"], environment, ProcessTimeout);
        Assert.True(run.ExitCode == 1, run.Text);
        Assert.Contains(run.Lines, l => l.StartsWith("Could not declare the RabbitMQ topology", StringComparison.Ordinal) && l.Contains("RabbitMq:Password", StringComparison.Ordinal));
    }

    internal static Dictionary<string, string> Environment(TestDatabase database, TestVirtualHost vhost)
    {
        var environment = new Dictionary<string, string> { ["ConnectionStrings__Postgres"] = database.ConnectionString };
        foreach (var (key, value) in vhost.ToWorkerConfiguration())
        {
            environment[key.Replace(":", "__", StringComparison.Ordinal)] = value ?? string.Empty;
        }

        return environment;
    }

    private static async Task<QueueInfo?> QueueAsync(TestServices services, TestVirtualHost vhost, string name)
    {
        using var response = await services.ManagementGetAsync($"api/queues/{Uri.EscapeDataString(vhost.Name)}/{Uri.EscapeDataString(name)}");
        return response.IsSuccessStatusCode ? await response.Content.ReadFromJsonAsync<QueueInfo>() : null;
    }

    private sealed record QueueInfo(
        [property: System.Text.Json.Serialization.JsonPropertyName("messages")] int Messages,
        [property: System.Text.Json.Serialization.JsonPropertyName("type")] string Type);
}
