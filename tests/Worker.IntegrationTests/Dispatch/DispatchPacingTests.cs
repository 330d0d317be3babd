using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Worker.Contracts;
using Worker.Testing;
using static Worker.IntegrationTests.Dispatch.DispatchHarness;

namespace Worker.IntegrationTests.Dispatch;

/// <summary>
/// Dispatchers paced by the shared rate gate in real time against a simulator that refuses a fourth arrival in any one
/// second. A real-time rate test: it runs in the serial collection, since parallel test hosts on a 2-core machine
/// starve the in-process simulator and senders alike (in a CI run where it ran beside them, a fourth call arrived
/// 0.9999 s after the first of four and drew a 429). A failure prints every start and arrival.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class DispatchPacingTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Two_dispatchers_on_one_database_never_send_a_prospect_twice_and_keep_the_gate()
    {
        var services = await TestServices.GetAsync();
        await using var database = await services.CreateDatabaseAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        await using var events = await EventCollector.StartAsync(vhost);
        // Gong's own limit (3 calls/s) and the workers' shared gate at the same rate: a call the gate lets through too
        // early is answered 429 and its ids are sent again, which the assertions below count.
        await using var gong = await StartGongAsync(requestsPerSecond: 3, configure: o => o.Faults.LatencyMinMs = o.Faults.LatencyMaxMs = 300);
        var now = DateTimeOffset.UtcNow;
        var requests = 0;
        for (var group = 0; group < 4; group++)
        {
            for (var r = 0; r < 10; r++)
            {
                // Overlapping ids between neighbouring requests of a group: the same id pending twice.
                var ids = Enumerable.Range((r * 50) - (r == 0 ? 0 : 10), r == 0 ? 50 : 60).Select(i => $"g{group}-{i:D4}").ToArray();
                await SeedRequestAsync(database, $"g{group}-r{r}", $"10{group}", $"owner{group}@example.com", ids, now);
                requests++;
            }
        }

        var settings = new KeyValuePair<string, string?>[] { new("Dispatch:MaxConcurrentBatches", "2"), new("Gong:RequestsPerSecond", "3"), new("Gong:RateWindowMargin", "00:00:00.020") };
        using var first = BuildWorker(output, database.ConnectionString, vhost, gong, settings: [.. settings, new("Dispatch:ReplicaName", "replica-a")]);
        using var second = BuildWorker(output, database.ConnectionString, vhost, gong, settings: [.. settings, new("Dispatch:ReplicaName", "replica-b")]);
        await Task.WhenAll(first.StartAsync(), second.StartAsync());
        await Poll.UntilAsync(() => events.Received.Count == requests, Timeout, "every request's event");
        await Task.WhenAll(first.StopAsync(), second.StopAsync());

        var calls = gong.Calls();
        await using var db = database.CreateDbContext();
        var seen = await DescribeCallsAsync(calls, db);
        var sent = calls.SelectMany(c => c.Ids.Select(id => (c.FlowId, id))).ToList();
        Assert.True(sent.Count == sent.Distinct().Count() && sent.Count == 4 * 500, $"{sent.Count} ids sent, {sent.Distinct().Count()} distinct, 2000 expected:\n{seen}");
        gong.AssertAssignedOnce(4 * 500);
        // When each call reached Gong (as Gong counts it).
        var starts = calls.Select(c => c.Time).Order().ToList();
        for (var i = 3; i < starts.Count; i++)
        {
            Assert.True(starts[i] - starts[i - 3] >= TimeSpan.FromSeconds(1), $"4 calls arrived within one second at {starts[i - 3]:O}:\n{seen}");
        }

        Assert.Equal(["replica-a", "replica-b"], await db.GongCalls.Select(c => c.Replica!).Distinct().OrderBy(r => r).ToListAsync());
        Assert.Equal(requests, events.Received.Select(e => e.MessageId).Distinct().Count());
        Assert.All(events.Received, e => Assert.Equal(RequestStatus.Succeeded, e.Message.Status));
        await AssertAllTerminalAsync(database);
    }
}
