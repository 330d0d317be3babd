using System.Net.Http.Json;
using System.Text.Json;

namespace Gong.Simulator.Tests;

public sealed class FaultTests
{
    [Fact]
    public async Task A_lowered_batch_limit_refuses_larger_batches_with_400()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.RateLimit.RequestsPerSecond = 0);
        await h.SetFaultsAsync(new { batchLimit = 100 });
        var ids = Enumerable.Range(0, 101).Select(i => $"p-{i}").ToList();

        using var tooMany = await h.AssignAsync(ids);
        using var fits = await h.AssignAsync(ids.Take(100));

        Assert.Equal(400, (int)tooMany.StatusCode);
        Assert.Contains("at most 100", (await SimulatorHarness.ReadJsonAsync(tooMany)).GetProperty("errors")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(200, (int)fits.StatusCode);
        Assert.Equal(100, h.State.GetStats().AssignmentsCount);
    }

    [Fact]
    public async Task A_401_period_refuses_every_call_until_it_ends()
    {
        await using var h = await SimulatorHarness.StartAsync();
        await h.SetFaultsAsync(new { unauthorizedForSeconds = 30 });

        using var during = await h.AssignAsync(["p-1"]);
        h.Time.Advance(TimeSpan.FromSeconds(29));
        using var stillDuring = await h.LookupAsync("p-1");
        h.Time.Advance(TimeSpan.FromSeconds(1));
        using var after = await h.AssignAsync(["p-1"]);

        Assert.Equal(401, (int)during.StatusCode);
        Assert.Equal(401, (int)stillDuring.StatusCode);
        Assert.Equal(200, (int)after.StatusCode);
        Assert.Equal(h.Time.GetUtcNow(), h.State.Faults.UnauthorizedUntil);
    }

    [Fact]
    public async Task A_500_after_commit_leaves_the_assignment_recorded_and_found_by_lookup()
    {
        await using var h = await SimulatorHarness.StartAsync();
        await h.SetFaultsAsync(new { script = new[] { new { kind = "ErrorAfterCommit", status = 500 } } });

        using var failed = await h.AssignAsync(["p-1", "p-2"]);
        var lookup = await h.LookupJsonAsync("p-1", "p-2");

        Assert.Equal(500, (int)failed.StatusCode);
        Assert.Equal(["requestId", "errors"], (await SimulatorHarness.ReadJsonAsync(failed)).EnumerateObject().Select(p => p.Name));
        Assert.Equal(["p-1", "p-2"], lookup.GetProperty("prospectsAssigned").EnumerateArray().Select(i => i.GetProperty("crmProspectId").GetString()));
        var call = h.State.GetCalls()[0];
        Assert.Equal((500, "ErrorAfterCommit", true), (call.Status, call.Fault, call.Committed));
    }

    [Fact]
    public async Task A_scripted_fault_waits_for_a_call_that_reaches_its_stage()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.RateLimit.RequestsPerSecond = 1);
        (await h.AssignAsync(["p-0"])).Dispose();
        await h.SetFaultsAsync(new { batchLimit = 1, script = new[] { new { kind = "ErrorAfterCommit", status = 502 } } });

        using var limited = await h.AssignAsync(["p-1"]);
        h.Time.Advance(TimeSpan.FromSeconds(1));
        using var tooBig = await h.AssignAsync(["p-1", "p-2"]);
        h.Time.Advance(TimeSpan.FromSeconds(1));
        using var faulted = await h.AssignAsync(["p-1"]);
        h.Time.Advance(TimeSpan.FromSeconds(1));
        using var normal = await h.AssignAsync(["p-2"]);

        Assert.Equal([429, 400, 502, 200], new[] { limited, tooBig, faulted, normal }.Select(r => (int)r.StatusCode));
        Assert.Empty(h.State.Faults.Script);
    }

    [Theory]
    [InlineData("2147483647")]
    [InlineData("Fri, 01 Jan 2094 00:00:00 GMT")]
    [InlineData("soon")]
    public async Task A_scripted_429_sends_any_Retry_After_value_verbatim(string value)
    {
        await using var h = await SimulatorHarness.StartAsync();
        await h.SetFaultsAsync(new { script = new[] { new { kind = "RateLimited", retryAfterHeader = value } } });

        using var refused = await h.AssignAsync(["p-1"]);

        Assert.Equal(429, (int)refused.StatusCode);
        Assert.Equal(value, Assert.Single(refused.Headers.GetValues("Retry-After")));
        Assert.Equal(value, h.State.GetCalls()[0].RetryAfter);
    }

    [Fact]
    public async Task A_slow_commit_commits_after_its_delay_even_when_the_client_has_gone()
    {
        await using var h = await SimulatorHarness.StartAsync();
        await h.SetFaultsAsync(new { script = new[] { new { kind = "SlowCommit", commitDelayMs = 40_000 } } });
        using var leave = new CancellationTokenSource();

        var call = h.AssignAsync(["p-1"], cancellationToken: leave.Token);
        await Eventually.GetAsync(() => Task.FromResult(h.State.WaitingCalls == 1 ? (object)true : null));
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);

        // The server learns of the client's leaving a little after it left (a CI run committed first and recorded 200).
        await Eventually.GetAsync(() => Task.FromResult(h.State.AbandonedCalls == 1 ? (object)true : null));
        h.Time.Advance(TimeSpan.FromSeconds(39));
        Assert.Empty((await h.LookupJsonAsync("p-1")).GetProperty("prospectsAssigned").EnumerateArray());

        h.Time.Advance(TimeSpan.FromSeconds(1));
        var record = await Eventually.GetAsync(() => Task.FromResult(h.State.GetCalls().FirstOrDefault(c => c.Fault == "SlowCommit")));
        Assert.Equal((0, true, 1), (record.Status, record.Committed, record.Assigned));
        Assert.Single((await h.LookupJsonAsync("p-1")).GetProperty("prospectsAssigned").EnumerateArray());
    }

    [Fact]
    public async Task A_5xx_before_commit_records_nothing()
    {
        await using var h = await SimulatorHarness.StartAsync();
        await h.SetFaultsAsync(new { script = new[] { new { kind = "ErrorBeforeCommit", status = 503 } } });

        using var failed = await h.AssignAsync(["p-1"]);
        var lookup = await h.LookupJsonAsync("p-1");

        Assert.Equal(503, (int)failed.StatusCode);
        Assert.Equal(0, lookup.GetProperty("prospectsAssigned").GetArrayLength());
    }

    [Fact]
    public async Task A_reset_after_commit_gives_the_client_no_answer_but_the_assignment_stands()
    {
        await using var h = await SimulatorHarness.StartAsync();
        await h.SetFaultsAsync(new { script = new[] { new { kind = "ResetAfterCommit" } } });

        await Assert.ThrowsAsync<HttpRequestException>(() => h.AssignAsync(["p-1"]));
        var lookup = await h.LookupJsonAsync("p-1");

        Assert.Equal(1, lookup.GetProperty("prospectsAssigned").GetArrayLength());
        Assert.Equal((0, "ResetAfterCommit", true), (h.State.GetCalls()[0].Status, h.State.GetCalls()[0].Fault, h.State.GetCalls()[0].Committed));
    }

    [Fact]
    public async Task A_timeout_after_commit_commits_then_holds_the_answer_past_the_clients_patience()
    {
        await using var h = await SimulatorHarness.StartAsync();
        await h.SetFaultsAsync(new { script = new[] { new { kind = "TimeoutAfterCommit" } }, timeoutAfterCommitDelayMs = 120_000 });
        using var clientGivesUp = new CancellationTokenSource();

        var pending = h.AssignAsync(["p-1"], cancellationToken: clientGivesUp.Token);
        await Eventually.GetAsync(() => Task.FromResult(h.State.GetCalls().FirstOrDefault()));
        Assert.False(pending.IsCompleted);
        var lookup = await h.LookupJsonAsync("p-1");
        await clientGivesUp.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        Assert.Equal(1, lookup.GetProperty("prospectsAssigned").GetArrayLength());
    }

    [Fact]
    public async Task Latency_holds_the_answer_for_the_configured_time()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.Faults.LatencyMinMs = o.Faults.LatencyMaxMs = 1_500);

        var pending = h.AssignAsync(["p-1"]);
        await Eventually.GetAsync(() => Task.FromResult(h.State.WaitingCalls == 1 ? (object)true : null));
        h.Time.Advance(TimeSpan.FromMilliseconds(1_499));
        Assert.False(pending.IsCompleted);
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        using var response = await pending;

        Assert.Equal(200, (int)response.StatusCode);
    }

    [Fact]
    public async Task Bad_request_ids_fail_the_whole_call_with_400_naming_the_id()
    {
        await using var h = await SimulatorHarness.StartAsync();
        await h.SetFaultsAsync(new { badRequestIds = new[] { "p-bad" } });

        using var response = await h.AssignAsync(["p-1", "p-bad", "p-2"]);

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("p-bad", (await SimulatorHarness.ReadJsonAsync(response)).GetProperty("errors")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(0, h.State.GetStats().AssignmentsCount);
    }

    [Fact]
    public async Task Random_faults_repeat_for_the_same_seed()
    {
        async Task<List<int>> RunAsync()
        {
            await using var h = await SimulatorHarness.StartAsync(o =>
            {
                o.Seed = 42;
                o.RateLimit.RequestsPerSecond = 0;
                o.Faults.ErrorAfterCommitRate = 0.3;
                o.Faults.ErrorBeforeCommitRate = 0.2;
            });
            var statuses = new List<int>();
            for (var i = 0; i < 30; i++)
            {
                using var response = await h.AssignAsync([$"p-{i}"]);
                statuses.Add((int)response.StatusCode);
            }

            return statuses;
        }

        var first = await RunAsync();
        var second = await RunAsync();

        Assert.Equal(first, second);
        Assert.Contains(200, first);
        Assert.Contains(first, s => s is 500 or 502 or 503);
    }

    [Fact]
    public async Task Faults_are_readable_and_replaced_as_a_whole_through_the_admin_endpoint()
    {
        await using var h = await SimulatorHarness.StartAsync(o => o.Faults.BatchLimit = 100);
        using var client = h.Simulator.CreateClient(authenticated: false);

        var before = await client.GetFromJsonAsync<JsonElement>("_sim/faults");
        using var put = await client.PutAsJsonAsync("_sim/faults", new { latencyMeanMs = 10, latencyJitterMs = 5 });
        var after = await SimulatorHarness.ReadJsonAsync(put);

        Assert.Equal(100, before.GetProperty("batchLimit").GetInt32());
        Assert.Equal(200, after.GetProperty("batchLimit").GetInt32());
        Assert.Equal(10, after.GetProperty("latencyMeanMs").GetInt32());
        Assert.Equal([500, 502, 503], after.GetProperty("serverErrorStatuses").EnumerateArray().Select(e => e.GetInt32()));
    }
}
