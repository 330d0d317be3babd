using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Worker.Host.Dispatch;
using Worker.Host.Operations;

namespace Worker.UnitTests.Operations;

public sealed class HealthCheckTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 29, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task The_dispatch_check_is_healthy_while_the_loop_beats_and_unhealthy_once_it_stops()
    {
        var time = new FakeTimeProvider(Start);
        var heartbeat = new DispatchHeartbeat(time);
        var check = new DispatchHeartbeatHealthCheck(heartbeat, time, Options.Create(new OperationsOptions { DispatchStaleAfter = TimeSpan.FromSeconds(60) }));

        heartbeat.Beat();
        time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(new HealthCheckContext())).Status);

        time.Advance(TimeSpan.FromSeconds(2));
        var stale = await check.CheckHealthAsync(new HealthCheckContext());
        Assert.Equal(HealthStatus.Unhealthy, stale.Status);
        Assert.Contains("Operations:DispatchStaleAfter", stale.Description, StringComparison.Ordinal);

        heartbeat.Beat();
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(new HealthCheckContext())).Status);
    }

    [Fact]
    public async Task Before_the_first_beat_the_process_start_counts_so_a_loop_that_never_starts_turns_unready()
    {
        var time = new FakeTimeProvider(Start);
        var check = new DispatchHeartbeatHealthCheck(new DispatchHeartbeat(time), time, Options.Create(new OperationsOptions { DispatchStaleAfter = TimeSpan.FromSeconds(30) }));

        var starting = await check.CheckHealthAsync(new HealthCheckContext());
        Assert.Equal(HealthStatus.Healthy, starting.Status);
        Assert.Equal("none", starting.Data["lastBeat"]);

        time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(HealthStatus.Unhealthy, (await check.CheckHealthAsync(new HealthCheckContext())).Status);
    }

    [Fact]
    public async Task A_credentials_pause_is_degraded_with_Gongs_reason_and_a_blocked_gate_is_only_data()
    {
        var blockedUntil = Start.AddHours(6);
        var state = new StubGongState(new GongPause("Invalid access key", Start, Start.AddMinutes(1)), blockedUntil);
        using var services = new ServiceCollection().AddSingleton<IGongDispatchState>(state).BuildServiceProvider();

        var paused = await new GongCredentialsHealthCheck(services).CheckHealthAsync(new HealthCheckContext());
        Assert.Equal(HealthStatus.Degraded, paused.Status);
        Assert.Contains("401", paused.Description, StringComparison.Ordinal);
        Assert.Contains("Invalid access key", paused.Description, StringComparison.Ordinal);

        state.Pause = null;
        var open = await new GongCredentialsHealthCheck(services).CheckHealthAsync(new HealthCheckContext());
        Assert.Equal(HealthStatus.Healthy, open.Status);
        Assert.Equal(blockedUntil.ToString("O", System.Globalization.CultureInfo.InvariantCulture), open.Data["rateGateBlockedUntil"]);
    }

    [Fact]
    public async Task Without_a_Gong_client_the_check_is_healthy()
    {
        using var services = new ServiceCollection().BuildServiceProvider();
        Assert.Equal(HealthStatus.Healthy, (await new GongCredentialsHealthCheck(services).CheckHealthAsync(new HealthCheckContext())).Status);
    }

    private sealed class StubGongState(GongPause? pause, DateTimeOffset? blockedUntil) : IGongDispatchState
    {
        public GongPause? Pause { get; set; } = pause;

        public Task<DateTimeOffset?> GetBlockedUntilAsync(CancellationToken cancellationToken) => Task.FromResult(blockedUntil);
    }
}
