using System.Net.Http.Json;
using System.Globalization;

namespace Gong.Simulator.Tests;

public sealed class RateLimitTests
{
    [Fact]
    public async Task Over_three_calls_in_one_second_answers_429_with_integer_Retry_After_until_the_window_moves()
    {
        await using var h = await SimulatorHarness.StartAsync();
        var statuses = new List<int>();
        for (var i = 0; i < 3; i++)
        {
            using var ok = await h.AssignAsync([$"p-{i}"]);
            statuses.Add((int)ok.StatusCode);
        }

        using var limited = await h.AssignAsync(["p-3"]);
        h.Time.Advance(TimeSpan.FromMilliseconds(999));
        using var stillLimited = await h.LookupAsync("p-0");
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        using var afterWindow = await h.AssignAsync(["p-3"]);

        Assert.Equal([200, 200, 200], statuses);
        Assert.Equal(429, (int)limited.StatusCode);
        Assert.Equal("1", Assert.Single(limited.Headers.GetValues("Retry-After")));
        Assert.Equal(["requestId", "errors"], (await SimulatorHarness.ReadJsonAsync(limited)).EnumerateObject().Select(p => p.Name));
        Assert.Equal(429, (int)stillLimited.StatusCode);
        Assert.Equal(200, (int)afterWindow.StatusCode);
        var stats = h.State.GetStats();
        Assert.Equal(2, stats.RateLimitedCalls);
        Assert.Equal(5, stats.MaxCallsInAnyOneSecond);
        Assert.Equal(3, stats.MaxAcceptedCallsInAnyOneSecond);
    }

    [Fact]
    public void A_call_is_counted_when_it_arrived_at_the_door_not_when_its_body_was_read()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 10, 0, 0, TimeSpan.Zero));
        var state = new SimulatorState(new SimulatorOptions(), time);
        var t0 = time.GetUtcNow();
        foreach (var ms in new[] { 0, 333, 666 })
        {
            time.SetUtcNow(t0.AddMilliseconds(ms));
            Assert.True(state.TryAcquireRateSlot(t0.AddMilliseconds(ms)).Accepted);
        }

        // Arrived at 999 ms, decided at 1,050 ms (slow body read): still the fourth arrival within one second.
        time.SetUtcNow(t0.AddMilliseconds(1050));
        var late = state.TryAcquireRateSlot(t0.AddMilliseconds(999));
        Assert.False(late.Accepted);
        Assert.True(late.SelfCaused);
        Assert.Equal(t0.AddMilliseconds(999), late.At);

        // Arrived at 1,001 ms: the first arrival has left the window.
        var next = state.TryAcquireRateSlot(t0.AddMilliseconds(1001));
        Assert.True(next.Accepted);
        Assert.Equal(t0.AddMilliseconds(1001), next.At);
    }

    [Fact]
    public void A_call_decided_after_a_later_arrival_is_judged_by_arrival_times()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 10, 0, 0, TimeSpan.Zero));
        var state = new SimulatorState(new SimulatorOptions(), time);
        var t0 = time.GetUtcNow();
        foreach (var ms in new[] { 2, 4, 900 })
        {
            time.SetUtcNow(t0.AddMilliseconds(ms));
            Assert.True(state.TryAcquireRateSlot(t0.AddMilliseconds(ms)).Accepted);
        }

        // B arrived at 1,005 ms and is decided first: 2 and 4 are more than a second before it.
        time.SetUtcNow(t0.AddMilliseconds(1020));
        Assert.True(state.TryAcquireRateSlot(t0.AddMilliseconds(1005)).Accepted);

        // A arrived at 1,000 ms, before B, and is decided after it: 2, 4, 900 and 1,000 lie within one second.
        var a = state.TryAcquireRateSlot(t0.AddMilliseconds(1000));
        Assert.False(a.Accepted);
        Assert.True(a.SelfCaused);
    }

    [Fact]
    public async Task The_daily_limit_answers_429_until_the_next_utc_midnight()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.RateLimit = new RateLimitOptions { RequestsPerSecond = 0, DailyCallLimit = 2 });
        (await h.AssignAsync(["p-1"])).Dispose();
        (await h.AssignAsync(["p-2"])).Dispose();

        using var limited = await h.AssignAsync(["p-3"]);
        h.Time.Advance(TimeSpan.FromHours(14));
        using var nextDay = await h.AssignAsync(["p-3"]);

        Assert.Equal(429, (int)limited.StatusCode);
        Assert.Equal("50400", Assert.Single(limited.Headers.GetValues("Retry-After"))); // 10:00 UTC -> midnight = 14 h
        Assert.Equal(200, (int)nextDay.StatusCode);
    }

    [Fact]
    public async Task Retry_After_as_an_http_date_or_left_out_by_mode()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.RateLimit = new RateLimitOptions { RequestsPerSecond = 1, RetryAfterMode = RetryAfterMode.HttpDate });
        (await h.AssignAsync(["p-1"])).Dispose();
        using var dated = await h.AssignAsync(["p-2"]);
        await h.PutAsync("_sim/rate-limit", new { requestsPerSecond = 1, dailyCallLimit = 0, retryAfterMode = "None" });
        using var bare = await h.AssignAsync(["p-2"]);

        Assert.Equal(429, (int)dated.StatusCode);
        var date = DateTimeOffset.ParseExact(Assert.Single(dated.Headers.GetValues("Retry-After")), "R", CultureInfo.InvariantCulture);
        Assert.Equal(h.Time.GetUtcNow().AddSeconds(1), date);
        Assert.Equal(429, (int)bare.StatusCode);
        Assert.False(bare.Headers.Contains("Retry-After"));
    }

    [Fact]
    public async Task Scripted_429s_come_first_then_normal_answers()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.RateLimit.RequestsPerSecond = 0);
        await h.SetFaultsAsync(new { script = Enumerable.Repeat(new { kind = "RateLimited", retryAfterSeconds = 2 }, 5) });

        var answers = new List<(int Status, string? RetryAfter)>();
        for (var i = 0; i < 6; i++)
        {
            using var response = await h.AssignAsync(["p-1"]);
            answers.Add(((int)response.StatusCode, response.Headers.TryGetValues("Retry-After", out var v) ? v.Single() : null));
        }

        Assert.Equal([.. Enumerable.Repeat((429, (string?)"2"), 5), (200, null)], answers);
        Assert.Equal(1, h.State.GetStats().AssignmentsCount);
    }

    [Fact]
    public async Task Concurrent_callers_on_the_real_clock_never_get_more_than_the_limit_accepted_in_any_second()
    {
        await using var simulator = await GongSimulatorApp.StartAsync(new SimulatorOptions());
        using var client = simulator.CreateClient();
        var until = DateTime.UtcNow.AddSeconds(2.5);

        async Task<List<int>> CallerAsync(int caller)
        {
            var statuses = new List<int>();
            for (var i = 0; DateTime.UtcNow < until; i++)
            {
                using var response = await client.PostAsJsonAsync(
                    "v2/flows/prospects/assign",
                    new { crmProspectsIds = new[] { $"c{caller}-{i}" }, flowId = "1", flowInstanceOwnerEmail = "a@example.com" });
                statuses.Add((int)response.StatusCode);
            }

            return statuses;
        }

        var all = (await Task.WhenAll(Enumerable.Range(0, 4).Select(CallerAsync))).SelectMany(s => s).ToList();
        var stats = simulator.State.GetStats();

        Assert.Equal(3, stats.MaxAcceptedCallsInAnyOneSecond);
        Assert.InRange(all.Count(s => s == 200), 3, 9); // at most 3 per second over about 2.5 s
        Assert.True(stats.RateLimitedCalls > 0);
        Assert.All(all, s => Assert.True(s is 200 or 429));
        Assert.Equal(all.Count(s => s == 200), stats.AssignmentsCount);
    }

    [Fact]
    public void Max_in_any_one_second_counts_a_sliding_window()
    {
        var t0 = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var times = new[] { 0, 400, 999, 1000, 1500, 1998, 3000 }.Select(ms => t0.AddMilliseconds(ms));

        Assert.Equal(4, SimulatorState.MaxInAnyOneSecond(times)); // 999, 1000, 1500, 1998
        Assert.Equal(0, SimulatorState.MaxInAnyOneSecond([]));
    }
}
