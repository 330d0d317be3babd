namespace Gong.Simulator.Tests;

/// <summary>The network knobs (arrival jitter, new-connection delay), another client's share of the quota, and which
/// 429s the simulator calls self-caused. The simulator runs on a fake clock: a held request moves only when the test
/// advances it.</summary>
public sealed class NetworkFaultTests
{
    [Fact]
    public async Task Arrival_jitter_holds_each_call_up_to_the_knob_and_counts_it_when_it_arrives()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.RateLimit.RequestsPerSecond = 0);
        (await h.AssignAsync(["warm"])).Dispose(); // the knob is off: the connection is now open
        await h.SetFaultsAsync(new { arrivalJitterMs = 100 });

        var offsets = new List<TimeSpan>();
        for (var i = 0; i < 8; i++)
        {
            var sent = h.Time.GetUtcNow();
            using var response = await StepUntilAnsweredAsync(h, h.AssignAsync([$"p-{i}"]));
            Assert.Equal(200, (int)response.StatusCode);
            offsets.Add(h.State.GetCalls()[^1].Time - sent);
        }

        Assert.All(offsets, o => Assert.InRange(o.TotalMilliseconds, 0, 101));
        Assert.True(offsets.Distinct().Count() > 1, $"jitter should vary: {string.Join(", ", offsets)}");
        Assert.Contains(offsets, o => o > TimeSpan.FromMilliseconds(5));
    }

    [Fact]
    public async Task The_first_request_of_a_new_connection_is_held_for_the_handshake_delay_and_later_ones_are_not()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.Faults.NewConnectionDelayMs = 150);

        var sent = h.Time.GetUtcNow();
        using (var first = await StepUntilAnsweredAsync(h, h.AssignAsync(["p-1"])))
        {
            Assert.Equal(200, (int)first.StatusCode);
        }

        var firstArrival = h.State.GetCalls()[^1].Time - sent;
        var reused = h.Time.GetUtcNow();
        using (var second = await h.AssignAsync(["p-2"])) // answered without advancing the clock: not held
        {
            Assert.Equal(200, (int)second.StatusCode);
        }

        // A cheap request that Gong does not count (HEAD of the base URL) pays the handshake of a new connection.
        using var other = h.Simulator.CreateClient();
        using (var probe = await StepUntilAnsweredAsync(h, other.SendAsync(new HttpRequestMessage(HttpMethod.Head, ""))))
        {
            Assert.NotEqual(200, (int)probe.StatusCode);
        }

        Assert.Equal(2, h.State.GetStats().TotalCalls);
        var afterProbe = h.Time.GetUtcNow();
        using (var third = await other.PostAsync("v2/flows/prospects/assign", Json(["p-3"])))
        {
            Assert.Equal(200, (int)third.StatusCode);
        }

        var calls = h.State.GetCalls();
        Assert.InRange(firstArrival.TotalMilliseconds, 150, 152);
        Assert.Equal(reused, calls[1].Time);
        Assert.Equal(afterProbe, calls[2].Time);
    }

    [Fact]
    public async Task Another_clients_calls_fill_the_window_and_the_429_they_cause_is_not_self_caused()
    {
        await using var h = await SimulatorHarness.StartAsync();
        await h.SetFaultsAsync(new { foreignCallsPerSecond = 1.0 });
        h.Time.Advance(TimeSpan.FromSeconds(1));
        await Eventually.GetAsync(() => Task.FromResult(h.State.GetStats().ForeignCalls == 1 ? (object)true : null));

        var statuses = new List<int>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await h.AssignAsync([$"p-{i}"]);
            statuses.Add((int)response.StatusCode);
        }

        Assert.Equal([200, 200, 429], statuses);
        var refused = h.State.GetCalls()[^1];
        Assert.False(refused.SelfCausedRateLimited);
        var stats = h.State.GetStats();
        Assert.Equal((1, 0, 1, 0), (stats.RateLimitedCalls, stats.SelfCausedRateLimited, stats.ForeignCalls, stats.ForeignRateLimited));
    }

    [Fact]
    public async Task A_fourth_own_call_in_one_second_is_a_self_caused_429_in_the_call_log_and_the_stats()
    {
        await using var h = await SimulatorHarness.StartAsync();
        var statuses = new List<int>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await h.AssignAsync([$"p-{i}"]);
            statuses.Add((int)response.StatusCode);
        }

        await h.SetFaultsAsync(new { script = new[] { new { kind = "RateLimited" } } });
        h.Time.Advance(TimeSpan.FromSeconds(2));
        using (var scripted = await h.AssignAsync(["p-9"]))
        {
            statuses.Add((int)scripted.StatusCode);
        }

        Assert.Equal([200, 200, 200, 429, 429], statuses);
        var calls = h.State.GetCalls();
        Assert.Equal([null, null, null, true, false], calls.Select(c => c.SelfCausedRateLimited));
        var stats = h.State.GetStats();
        Assert.Equal((2, 1), (stats.RateLimitedCalls, stats.SelfCausedRateLimited));
    }

    private static StringContent Json(string[] ids) => new(
        System.Text.Json.JsonSerializer.Serialize(new { crmProspectsIds = ids, flowId = SimulatorHarness.FlowId, flowInstanceOwnerEmail = SimulatorHarness.Owner }),
        System.Text.Encoding.UTF8,
        "application/json");

    /// <summary>Advances the fake clock 1 ms at a time while the request is held by a network delay.</summary>
    private static async Task<HttpResponseMessage> StepUntilAnsweredAsync(SimulatorHarness h, Task<HttpResponseMessage> request)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!request.IsCompleted)
        {
            Assert.True(DateTime.UtcNow < deadline, "the request was not answered");
            if (h.State.WaitingCalls > 0)
            {
                h.Time.Advance(TimeSpan.FromMilliseconds(1));
            }

            await Task.WhenAny(request, Task.Delay(2));
        }

        return await request;
    }
}
