using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Worker.Host.Dispatch;

namespace Worker.Host.Operations;

/// <summary>
/// Readiness entry for Gong: Degraded with Gong's reason while dispatch is paused after a 401 (credentials, shared by
/// every replica), else Healthy; the shared rate gate's block (a 429's Retry-After, the daily budget) is reported in the
/// text ("blocked until … (reason)") and as data, never as a failure, since waiting it out is normal operation. Degraded keeps <c>/health/ready</c> at 200: a credentials problem is the same
/// for every replica, restarting or unrouting pods cannot fix it, and the body and the <c>flow_assignment_gong_paused</c>
/// gauge make it visible. <see cref="IGongDispatchState"/> is resolved optionally so the host works without a Gong client.
/// </summary>
internal sealed class GongCredentialsHealthCheck(IServiceProvider services) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var state = services.GetService<IGongDispatchState>();
        if (state is null)
        {
            return HealthCheckResult.Healthy("No Gong client registered.");
        }

        var data = new Dictionary<string, object>();
        await state.RefreshAsync(cancellationToken).ConfigureAwait(false);
        var block = await state.GetBlockAsync(cancellationToken).ConfigureAwait(false);
        data["rateGateBlockedUntil"] = block?.Until.ToString("O", CultureInfo.InvariantCulture) ?? "none";
        if (block?.Reason is { } why)
        {
            data["rateGateBlockedReason"] = why;
        }

        var gate = block is null
            ? "rate gate open"
            : string.Create(CultureInfo.InvariantCulture, $"rate gate blocked until {block.Until:O} ({block.Reason ?? "reason unknown"}); lift it early with 'gate open --reason ...'");
        if (state.Pause is { } pause)
        {
            data["pausedSince"] = pause.Since.ToString("O", CultureInfo.InvariantCulture);
            data["nextProbeAt"] = pause.NextProbeAt.ToString("O", CultureInfo.InvariantCulture);
            data["refusedProbes"] = pause.RefusedProbes;
            return HealthCheckResult.Degraded(
                $"Gong refused the credentials (401): dispatch paused, prospects stay Pending. Reason: {pause.Reason}; {gate}.", data: data);
        }

        // A block is data, not a failure: waiting out a Retry-After is normal operation.
        return HealthCheckResult.Healthy(block is null ? "Gong calls allowed." : $"Gong calls held: {gate}.", data);
    }
}
