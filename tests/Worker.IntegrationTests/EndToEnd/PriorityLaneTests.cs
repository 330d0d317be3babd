using System.Diagnostics;
using Gong.Simulator;
using Microsoft.EntityFrameworkCore;
using Worker.Contracts;
using Worker.IntegrationTests.Dispatch;
using Worker.Persistence.Entities;

namespace Worker.IntegrationTests.EndToEnd;

/// <summary>
/// The optional <c>priority</c> of the wire contract end to end (issue 15): old messages without it, an unknown value,
/// and a requestId sent again with another priority.
/// </summary>
public sealed class PriorityLaneContractTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Old_format_messages_work_unchanged_an_unknown_priority_is_rejected_and_priority_is_not_identity()
    {
        await using var world = await EndToEndWorld.StartAsync();
        const string flow = "1695493301223591001";

        // A raw JSON body as publishers wrote it before the field existed.
        await world.PublishPlainJsonAsync(EndToEndWorld.PlainJson("prio-old-1", flow, "owner@example.com", ["old-1", "old-2"]));
        await world.PublishPlainJsonAsync("""
            {"requestId":"prio-unknown-1","flowId":"1695493301223591001","flowInstanceOwnerEmail":"owner@example.com",
             "crmProspectIds":["never-1"],"priority":"urgent"}
            """);
        await world.PublishAsync(new AssignProspectsToFlow("prio-high-1", flow, "owner@example.com", ["hot-1"]) { Priority = "high" });
        await world.WaitForEventsAsync(["prio-old-1", "prio-unknown-1", "prio-high-1"], Deadline);

        var (old, oldRows) = await world.AssertEventMatchesTableAsync("prio-old-1");
        Assert.Equal(RequestStatus.Succeeded, old.Status);
        Assert.Equal("normal", old.Priority);
        Assert.All(oldRows, r => Assert.Equal(ProspectPriority.Normal, r.Priority));

        var (unknown, _) = await world.AssertEventMatchesTableAsync("prio-unknown-1");
        Assert.Equal(RequestStatus.Rejected, unknown.Status);
        Assert.Null(unknown.Priority);
        var error = Assert.Single(unknown.Errors!);
        Assert.StartsWith("priority: ", error, StringComparison.Ordinal);
        Assert.Contains("urgent", error, StringComparison.Ordinal);

        var (high, highRows) = await world.AssertEventMatchesTableAsync("prio-high-1");
        Assert.Equal(("high", RequestStatus.Succeeded), (high.Priority, high.Status));
        Assert.All(highRows, r => Assert.Equal(ProspectPriority.High, r.Priority));
        Assert.Equal(ProspectPriority.High, (await world.RequestAsync("prio-high-1")).Priority);

        // The same requestId with another priority is the same request: a no-op, the stored priority stands, no event
        // and nothing in the error queue. A later request in the same queue shows the duplicate was consumed.
        await world.PublishAsync(new AssignProspectsToFlow("prio-high-1", flow, "owner@example.com", ["hot-1"]) { Priority = "bulk" });
        await world.PublishAsync(new AssignProspectsToFlow("prio-after-1", flow, "owner@example.com", ["after-1"]));
        await world.WaitForEventsAsync(["prio-after-1"], Deadline);
        await Poll.UntilAsync(async () => await QueueDepthAsync(world, "assign-prospects-to-flow") == 0, Deadline, "command queue drained");
        Assert.Equal(ProspectPriority.High, (await world.RequestAsync("prio-high-1")).Priority);
        await world.AssertCleanAsync(["prio-old-1", "prio-unknown-1", "prio-high-1", "prio-after-1"]);
    }

    private static async Task<uint> QueueDepthAsync(EndToEndWorld world, string queue)
    {
        await using var connection = await new RabbitMQ.Client.ConnectionFactory { Uri = world.VirtualHost.AmqpUri }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var ok = await channel.QueueDeclarePassiveAsync(queue);
        return ok.MessageCount;
    }
}

/// <summary>
/// Priority lanes at Gong's real rate (3 calls/s) and under sustained load, against the simulator: a hot lead is not
/// stuck behind a campaign, the campaign still drains at the full rate, and bulk keeps its minimum share.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class PriorityLaneRateTests
{
    private const string Owner = "campaign.owner@example.com";

    [Fact]
    public async Task A_high_request_for_a_group_in_a_20000_prospect_bulk_backlog_gets_its_event_within_6_s_at_3_calls_per_s()
    {
        await using var world = await EndToEndWorld.StartAsync(callsPerSecond: 3);
        var flows = Enumerable.Range(0, 20).Select(i => $"16954933012235{i:D5}").ToArray();
        for (var i = 0; i < flows.Length; i++)
        {
            await world.PublishAsync(new AssignProspectsToFlow($"campaign-{i}", flows[i], Owner, EndToEndWorld.Ids($"c{i:D2}-", 1000)) { Priority = "bulk" });
        }

        await Poll.UntilAsync(async () => await RowCountAsync(world) == 20_000, TimeSpan.FromSeconds(90), "the 20,000-prospect backlog stored");
        await Poll.UntilAsync(() => Assigns(world).Count >= 6, TimeSpan.FromSeconds(30), "the bulk drain under way (6 calls)");

        // Group 7 is itself in the backlog, with hundreds of its bulk rows ahead of the hot lead's.
        string[] hot = ["hot-lead-1", "hot-lead-2", "hot-lead-3"];
        var publishedAt = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        await world.PublishAsync(new AssignProspectsToFlow("hot-lead", flows[7], Owner, hot) { Priority = "high" });
        await world.WaitForEventsAsync(["hot-lead"], TimeSpan.FromSeconds(60));
        var timeToEvent = clock.Elapsed;

        var (completed, rows) = await world.AssertEventMatchesTableAsync("hot-lead");
        Assert.Equal(("high", RequestStatus.Succeeded), (completed.Priority, completed.Status));
        var hotCall = Assert.Single(Assigns(world), c => c.Ids.Intersect(hot).Any());
        DispatchBatch hotBatch;
        await using (var db = world.Database.CreateDbContext())
        {
            var batchId = rows[0].BatchId;
            hotBatch = await db.DispatchBatches.AsNoTracking().SingleAsync(b => b.Id == batchId);
        }

        string Since(DateTimeOffset at) => $"{(at - publishedAt).TotalSeconds:F2} s";
        Assert.True(timeToEvent < TimeSpan.FromSeconds(6),
            $"high request's event after {timeToEvent.TotalSeconds:F2} s (limit 6 s): stored {Since(completed.ReceivedAt)}, claimed {Since(hotBatch.ClaimedAt)}, " +
            $"at Gong {Since(hotCall.Time)}, recorded {Since(completed.CompletedAt)}");
        Assert.Equal(ProspectPriority.High, hotBatch.Priority);

        // One call carried the three, filled to 200 with the group's bulk rows (never half-empty to be fast).
        Assert.Equal((3, 200, flows[7]), (hotCall.Ids.Intersect(hot).Count(), hotCall.IdsCount, hotCall.FlowId));

        // The campaign keeps draining at the gate's rate around it: the 10 s from the high request's publish on. The gate
        // spaces 3 calls by 1 s plus the arrival margin (at most about 27 in 10 s); on this shared 2-core machine at a load
        // average of 25-60, 15 to 25 landed here, with or without the gate's priority horizon.
        var end = publishedAt + TimeSpan.FromSeconds(10);
        await Poll.UntilAsync(() => Assigns(world).Any(c => c.Time >= end), TimeSpan.FromSeconds(40), "10 s of calls");
        var window = Assigns(world).Count(c => c.Time >= publishedAt && c.Time < end);
        Assert.True(window >= 20, $"{window} calls in 10 s at 3 calls/s: the bulk drain slowed down");
        string seen;
        await using (var db = world.Database.CreateDbContext())
        {
            seen = await Dispatch.DispatchHarness.DescribeCallsAsync(world.Simulator.State.GetCalls(), db);
        }

        Assert.True(Assigns(world).All(c => (c.Status, c.IdsCount) == (200, 200)), $"every assign answered 200 with 200 ids ({HeapSettle.PausesSince(world.HeapMark)}):\n{seen}");
        var stats = world.Simulator.State.GetStats();
        Assert.Equal((0, 0), (stats.RateLimitedCalls, stats.DuplicateOfApiAssignmentAttempts));
    }

    [Fact]
    public async Task Bulk_keeps_its_minimum_share_of_calls_under_sustained_normal_load()
    {
        await using var world = await EndToEndWorld.StartAsync(callsPerSecond: 10, settings: ["--Dispatch:BulkMinimumShare=0.25"]);
        for (var i = 0; i < 4; i++)
        {
            await world.PublishAsync(new AssignProspectsToFlow($"share-normal-{i}", $"169549330122361{i:D4}", Owner, EndToEndWorld.Ids($"n{i}-", 5000)));
            await world.PublishAsync(new AssignProspectsToFlow($"share-bulk-{i}", $"169549330122362{i:D4}", Owner, EndToEndWorld.Ids($"b{i}-", 3000)) { Priority = "bulk" });
        }

        await Poll.UntilAsync(async () => await RowCountAsync(world) == 32_000, TimeSpan.FromSeconds(90), "both backlogs stored");
        var since = DateTimeOffset.UtcNow;
        List<DispatchBatch> batches = [];
        await Poll.UntilAsync(async () =>
        {
            await using var db = world.Database.CreateDbContext();
            batches = await db.DispatchBatches.AsNoTracking().Where(b => b.ClaimedAt > since).OrderBy(b => b.ClaimedAt).ToListAsync();
            return batches.Count >= 40;
        }, TimeSpan.FromSeconds(60), "40 batches claimed with both lanes pending");

        // Normal work was pending the whole time (100 normal batches' worth), so without the share bulk would get none.
        var measured = batches.Take(40).ToList();
        var bulk = measured.Count(b => b.Priority == ProspectPriority.Bulk);
        var normal = measured.Count(b => b.Priority == ProspectPriority.Normal);
        Assert.True(normal + bulk == 40, $"{normal} normal + {bulk} bulk of 40");
        Assert.True(bulk >= 8 && bulk <= 14, $"{bulk} of 40 batches served bulk (share 0.25): {string.Join(' ', measured.Select(b => b.Priority.ToString()[0]))}");
        await using (var db = world.Database.CreateDbContext())
        {
            Assert.True(await db.ProspectAssignments.CountAsync(p => p.Priority == ProspectPriority.Normal && p.Status == ProspectAssignmentStatus.Pending) > 0,
                "normal work ran out during the measurement: the load was not sustained");
        }

        Assert.Equal(0, world.Simulator.State.GetStats().DuplicateOfApiAssignmentAttempts);
    }

    private static List<CallRecord> Assigns(EndToEndWorld world) =>
        [.. world.Simulator.State.GetCalls().Where(c => c.Endpoint == SimulatorEndpoints.Assign).OrderBy(c => c.Time)];

    private static async Task<int> RowCountAsync(EndToEndWorld world)
    {
        await using var db = world.Database.CreateDbContext();
        return await db.ProspectAssignments.CountAsync();
    }
}
