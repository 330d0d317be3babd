using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Worker.Testing;
using static Worker.IntegrationTests.Dispatch.DispatchHarness;

namespace Worker.IntegrationTests.Dispatch;

public sealed class RelayTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Events_completed_while_RabbitMQ_is_down_are_published_once_each_after_it_returns()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        await using var broker = new TcpProxy(vhost.Host, vhost.Port);
        await using var gong = await StartGongAsync();

        using var host = BuildWorker(output, database.ConnectionString, vhost, gong, rabbitPort: broker.Port,
            settings: [new("Relay:PublishTimeout", "00:00:01"), new("Dispatch:MaxBatchDelay", "00:00:00")]);
        await host.StartAsync();

        // Up: one request goes all the way through the proxied connection.
        await SeedRequestAsync(database, "before", "7", "owner@example.com", ["x"], DateTimeOffset.UtcNow);
        await Poll.UntilAsync(() => events.For("before") is not null, Timeout, "the event published before the outage");

        broker.Cut();
        for (var i = 0; i < 5; i++)
        {
            await SeedRequestAsync(database, $"during-{i}", "7", "owner@example.com", Ids($"r{i}-", 30), DateTimeOffset.UtcNow);
        }

        // Every request completes and its publish fails at least once while the broker is unreachable.
        await Poll.UntilAsync(async () =>
        {
            await using var db = database.CreateDbContext();
            return await db.OutboxMessages.CountAsync(o => o.PublishedAt == null && o.Attempts >= 1 && o.LastError != null) == 5;
        }, Timeout, "five outbox rows waiting after failed publishes");
        Assert.Single(events.Received);

        broker.Restore();
        await Poll.UntilAsync(() => AllPublishedAsync(database, 6), Timeout, "every outbox row published after the broker returned");
        await Poll.UntilAsync(() => events.Received.Count >= 6, Timeout, "six events received");
        await host.StopAsync();

        await using (var db = database.CreateDbContext())
        {
            var outbox = await db.OutboxMessages.ToListAsync();
            Assert.Equal(outbox.Select(o => (Guid?)o.Id).Order(), events.Received.Select(e => e.MessageId).Order());
            Assert.All(outbox.Where(o => o.CreatedAt > outbox.Min(x => x.CreatedAt)), o => Assert.True(o.Attempts >= 2));
        }

        Assert.Equal(6, events.Received.Select(e => e.Message.RequestId).Distinct().Count());
        await AssertAllTerminalAsync(database);
    }
}
