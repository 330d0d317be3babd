using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Persistence.Entities;

namespace Worker.UnitTests.Dispatch;

/// <summary>The order across priority lanes and the bulk minimum share (issue 15), without a database.</summary>
public sealed class PriorityLanePolicyTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_group_with_high_rows_goes_before_every_other_and_normal_before_bulk()
    {
        var policy = Policy(0.1);
        PendingGroup[] groups =
        [
            Group("bulk-never-served", eligible: 200, high: null, normal: null, bulk: Now.AddMinutes(-10), lastServed: null),
            Group("normal", eligible: 200, high: null, normal: Now.AddMinutes(-1), bulk: null, lastServed: Now.AddSeconds(-5)),
            Group("hot-in-backlog", eligible: 200, high: Now.AddMilliseconds(-10), normal: null, bulk: Now.AddMinutes(-10), lastServed: Now.AddSeconds(-1)),
        ];

        var plan = policy.Plan(groups, Now, highOnly: false);

        Assert.Equal(["hot-in-backlog", "normal", "bulk-never-served"], plan.Ready.Select(r => r.Group.FlowId));
        Assert.Equal([ProspectPriority.High, ProspectPriority.Normal, ProspectPriority.Bulk], plan.Ready.Select(r => r.Tier));
    }

    [Fact]
    public void A_few_high_rows_make_their_group_ready_after_HighPriorityMaxBatchDelay_not_MaxBatchDelay()
    {
        var policy = Policy(0.1);
        var waiting = Group("hot", eligible: 3, high: Now.AddMilliseconds(-100), normal: null, bulk: null, lastServed: null, oldest: Now.AddMilliseconds(-100));
        var due = Group("hot-due", eligible: 3, high: Now.AddMilliseconds(-300), normal: null, bulk: null, lastServed: null, oldest: Now.AddMilliseconds(-300));

        var plan = policy.Plan([waiting, due], Now, highOnly: false);

        Assert.Equal(["hot-due"], plan.Ready.Select(r => r.Group.FlowId));
        Assert.Equal(Now.AddMilliseconds(150), plan.NextReadyAt);
    }

    [Fact]
    public void Under_the_daily_reserve_only_groups_with_high_rows_are_served_and_no_bulk_turn_is_offered()
    {
        var policy = Policy(0.5);
        PendingGroup[] groups =
        [
            Group("normal", eligible: 200, high: null, normal: Now.AddMinutes(-1), bulk: Now.AddMinutes(-1), lastServed: null),
            Group("hot", eligible: 200, high: Now.AddSeconds(-1), normal: null, bulk: null, lastServed: null),
        ];

        var plan = policy.Plan(groups, Now, highOnly: true);

        Assert.Equal(["hot"], plan.Ready.Select(r => r.Group.FlowId));
        Assert.Empty(plan.BulkCandidates);
    }

    [Theory]
    [InlineData(0.1, 10)]
    [InlineData(0.25, 4)]
    [InlineData(0.5, 2)]
    public void A_bulk_turn_is_owed_once_per_one_over_share_batches_while_bulk_waits(double share, int period)
    {
        var policy = Policy(share);
        var turns = new List<bool>();
        for (var i = 0; i < period * 5; i++)
        {
            var bulkTurn = policy.BulkTurnDue;
            turns.Add(bulkTurn);
            policy.Claimed(Batch(bulkTurn ? ProspectPriority.Bulk : ProspectPriority.Normal), servedBulkFirst: bulkTurn, bulkWaiting: true);
        }

        Assert.Equal(5, turns.Count(t => t));
        Assert.All(turns.Chunk(period), chunk => Assert.Single(chunk, t => t));
    }

    [Fact]
    public void No_bulk_turn_is_earned_while_no_bulk_work_waits()
    {
        var policy = Policy(0.5);
        for (var i = 0; i < 10; i++)
        {
            policy.Claimed(Batch(ProspectPriority.Normal), servedBulkFirst: false, bulkWaiting: false);
        }

        Assert.False(policy.BulkTurnDue);
    }

    [Theory]
    [InlineData(ProspectPriority.High, 10_000)]
    [InlineData(ProspectPriority.Normal, 9_500)]
    [InlineData(ProspectPriority.Bulk, 9_500)]
    public void Normal_and_bulk_stop_at_the_daily_limit_less_the_reserve(ProspectPriority priority, int limit) =>
        Assert.Equal(limit, GatePriority.DailyLimit(priority, new GongOptions()));

    [Fact]
    public void The_reserve_is_at_most_a_tenth_of_a_small_daily_limit() =>
        Assert.Equal((0, 2), (GatePriority.DailyReserve(new GongOptions { DailyCallLimit = 2 }), GatePriority.DailyLimit(ProspectPriority.Bulk, new GongOptions { DailyCallLimit = 2 })));

    [Fact]
    public void Only_high_callers_reserve_gate_slots_far_ahead_and_normal_asks_before_bulk()
    {
        Assert.Null(GatePriority.ReserveAhead(ProspectPriority.High));
        var normal = GatePriority.ReserveAhead(ProspectPriority.Normal)!.Value;
        var bulk = GatePriority.ReserveAhead(ProspectPriority.Bulk)!.Value;
        Assert.True(bulk < normal && normal < TimeSpan.FromSeconds(1), $"normal {normal}, bulk {bulk}");
    }

    private static PriorityLanePolicy Policy(double share) => new(
        NpgsqlDataSource.Create("Host=127.0.0.1;Database=unused"),
        Options.Create(new DispatchOptions { BulkMinimumShare = share, MaxBatchDelay = TimeSpan.FromSeconds(2), HighPriorityMaxBatchDelay = TimeSpan.FromMilliseconds(250) }),
        Options.Create(new GongOptions()),
        TimeProvider.System);

    private static PendingGroup Group(string flow, int? eligible, DateTimeOffset? high, DateTimeOffset? normal, DateTimeOffset? bulk, DateTimeOffset? lastServed, DateTimeOffset? oldest = null) =>
        new(flow, "owner@example.com", oldest ?? new[] { high, normal, bulk }.Where(t => t is not null).Min()!.Value, eligible, lastServed)
        {
            Lanes = new LaneOldest(high, normal, bulk),
        };

    private static AssignmentBatch Batch(ProspectPriority priority) =>
        new(Guid.NewGuid(), "1", "owner@example.com", ["a"], new HashSet<string>()) { Priority = priority };
}
