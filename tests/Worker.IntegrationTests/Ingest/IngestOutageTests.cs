using System.Text.Json.Nodes;
using Npgsql;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.Ingest;

/// <summary>
/// Issue 11 case 8: a database outage longer than the in-place retries. The retries are shortened (2 retries of
/// 100–200 ms, so the old code moved the messages to the error queue within about a second of the cut) and the
/// endpoint's pause is 1 s, so the outage spans several stop/start cycles within seconds.
/// </summary>
public sealed class IngestOutageTests(ITestOutputHelper output)
{
    private const int Messages = 20;

    [Fact]
    public async Task A_database_outage_longer_than_the_retries_leaves_the_messages_Ready_and_stores_each_once_when_back()
    {
        await using var h = await IngestHarness.CreateAsync(output);
        var target = new NpgsqlConnectionStringBuilder(h.Database.ConnectionString);
        await using var proxy = new TcpProxy(target.Host!, target.Port);
        var proxied = new NpgsqlConnectionStringBuilder(h.Database.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port, Timeout = 3 };
        await h.StartHostAsync(
            proxied.ConnectionString,
            "--Ingest:TransientRetryLimit=2",
            "--Ingest:RetryMinInterval=00:00:00.100",
            "--Ingest:RetryMaxInterval=00:00:00.200",
            "--Ingest:OutagePause=00:00:01");

        proxy.Cut();
        var requestIds = Enumerable.Range(1, Messages).Select(i => $"outage-{i:D2}").ToList();
        foreach (var requestId in requestIds)
        {
            await h.PublishRawAsync(Body(requestId));
        }

        // The endpoint stops consuming: every message Ready again, no consumer, nothing in the error queue.
        await WaitStoppedWithAllReadyAsync(h, "the endpoint to stop consuming with all messages Ready");

        // It starts again by itself after the pause, finds Postgres still unreachable and stops again: still nothing lost.
        var refusedBefore = proxy.RefusedConnections;
        await Poll.UntilAsync(() => Task.FromResult(proxy.RefusedConnections), n => n > refusedBefore, "the endpoint to try Postgres again after its pause");
        await WaitStoppedWithAllReadyAsync(h, "the endpoint to stop again while Postgres is still unreachable");
        Assert.Equal(0, h.Ingested.GetValueOrDefault("accepted"));

        proxy.Restore();
        await Poll.UntilAsync(() => CountAsync(h), n => n == Messages, $"all {Messages} requests stored once Postgres is back", TimeSpan.FromSeconds(90));
        await using var db = h.Database.CreateDbContext();
        var stored = db.AssignmentRequests.Select(r => new { r.RequestId, r.PendingCount }).ToList();
        Assert.Equal(requestIds.Order(StringComparer.Ordinal), stored.Select(r => r.RequestId).Order(StringComparer.Ordinal));
        Assert.All(stored, r => Assert.Equal(2, r.PendingCount));
        Assert.Equal(2 * Messages, db.ProspectAssignments.Count(p => p.Status == ProspectAssignmentStatus.Pending));
        await Poll.UntilAsync(h.CommandQueueAsync, q => q is { Ready: 0, Consumers: > 0 }, "the endpoint consuming again with an empty queue");
        Assert.Equal(0u, await h.ErrorQueueDepthAsync());
        Assert.Equal(Messages, h.Ingested.GetValueOrDefault("accepted"));
    }

    private static async Task WaitStoppedWithAllReadyAsync(IngestHarness h, string what)
    {
        await Poll.UntilAsync(async () =>
        {
            var errors = await h.ErrorQueueDepthAsync();
            Assert.True(errors == 0, $"{errors} message(s) were moved to the error queue during the outage");
            return await h.CommandQueueAsync();
        }, q => q is { Ready: Messages, Consumers: 0 }, what);
    }

    private static async Task<int> CountAsync(IngestHarness h)
    {
        await using var db = h.Database.CreateDbContext();
        return db.AssignmentRequests.Count();
    }

    private static string Body(string requestId) => new JsonObject
    {
        ["requestId"] = requestId,
        ["flowId"] = "1695493301223590792",
        ["flowInstanceOwnerEmail"] = "owner@example.com",
        ["crmProspectIds"] = new JsonArray("a1", "a2"),
    }.ToJsonString();
}
