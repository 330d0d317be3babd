using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Worker.Testing;
using static Worker.IntegrationTests.Dispatch.DispatchHarness;

namespace Worker.IntegrationTests.Dispatch;

public sealed class RelayShutdownTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_publish_cut_short_by_the_flush_deadline_is_left_due_at_once_and_not_sent_twice()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        await using var broker = new TcpProxy(vhost.Host, vhost.Port);
        await using var gong = await StartGongAsync();
        IEnumerable<KeyValuePair<string, string?>> settings =
            [new("Relay:PublishTimeout", "00:01:00"), new("Relay:FlushTimeout", "00:00:01"), new("Dispatch:MaxBatchDelay", "00:00:00")];

        using (var host = BuildWorker(output, database.ConnectionString, vhost, gong, rabbitPort: broker.Port, settings: settings))
        {
            await host.StartAsync();
            await SeedRequestAsync(database, "before", "7", "owner@example.com", ["x"], DateTimeOffset.UtcNow);
            await Poll.UntilAsync(() => events.For("before") is not null, Timeout, "the event published while the broker is up");

            // The broker goes silent: the next publish hangs (its timeout is a minute), then the host is stopped.
            broker.Cut();
            await SeedRequestAsync(database, "during", "7", "owner@example.com", ["y"], DateTimeOffset.UtcNow);
            await Poll.UntilAsync(async () =>
            {
                await using var db = database.CreateDbContext();
                return await db.OutboxMessages.AnyAsync(o => db.AssignmentRequests.Any(r => r.Id == o.AssignmentRequestId && r.RequestId == "during") && o.LockedUntil != null);
            }, Timeout, "the relay publishing the second event");
            await host.StopAsync();
        }

        await using (var db = database.CreateDbContext())
        {
            var request = await db.AssignmentRequests.AsNoTracking().SingleAsync(r => r.RequestId == "during");
            var row = await db.OutboxMessages.AsNoTracking().SingleAsync(o => o.AssignmentRequestId == request.Id);
            Assert.Null(row.PublishedAt);
            Assert.Null(row.LockedUntil);
            // The loop's round kept its publish past the stop signal until the flush deadline (one attempt: the flush
            // never sends a row whose publish may still be confirmed) ...
            Assert.Equal(1, row.Attempts);
            // ... and that cut is not a broker failure, so the row is due now for whichever replica runs next.
            Assert.True(row.AvailableAt <= DateTimeOffset.UtcNow, $"available_at {row.AvailableAt:O} is in the future");
        }

        broker.Restore();
        using (var next = BuildWorker(output, database.ConnectionString, vhost, gong, rabbitPort: broker.Port))
        {
            await next.StartAsync();
            await Poll.UntilAsync(() => events.For("during") is not null, Timeout, "the event published by the next replica");
            await next.StopAsync();
        }
    }
}
