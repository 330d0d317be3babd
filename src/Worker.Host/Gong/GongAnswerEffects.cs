using System.Globalization;
using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Persistence.Entities;

namespace Worker.Host.Gong;

/// <summary>
/// What a Gong answer means for every replica, applied after <see cref="GongGatedCaller"/> made and recorded the call:
/// <list type="bullet">
/// <item>429: blocks the shared gate until Retry-After (seconds or HTTP date; without it
/// <see cref="TooManyRequestsBackoff"/>), clamped to <c>MaxRetryAfter</c>, plus <c>RetryAfterMargin</c>, and halts the
/// send; any other status restarts that backoff;</item>
/// <item>401: the credentials pause every replica shares (<see cref="GongDispatchState"/>: one step of backoff per
/// refused probe), and halts the send; any other answer to a call started after the pause began ends it.</item>
/// </list>
/// After a 429 or a 401 the shared block or pause holds the work, not the prospects' own <c>available_at</c> (unless the
/// block could not be stored).
/// </summary>
internal sealed partial class GongAnswerEffects(
    PostgresRateGate gate,
    GongDispatchState state,
    TooManyRequestsBackoff backoff,
    IOptions<GongOptions> options,
    TimeProvider time,
    ILogger<GongAnswerEffects> logger)
{
    /// <summary>Applies <paramref name="result"/> of a call made for <paramref name="send"/>: ends or starts the
    /// credentials pause, restarts or steps the 429 backoff, blocks the gate (and sets <c>RetryAfterSeconds</c> of the
    /// call's <paramref name="call"/> row) and sets <see cref="BatchSend.Halt"/> after a 429 or a 401.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable while recording a 401 or the end of a pause.</exception>
    public async Task ApplyAsync(BatchSend send, GongHttpResult result, GongCall call)
    {
        ArgumentNullException.ThrowIfNull(send);
        ArgumentNullException.ThrowIfNull(result);
        await ObserveAsync(result).ConfigureAwait(false);
        switch (result.Kind)
        {
            case GongCallKind.TooManyRequests:
                await BlockAsync(send, result, call).ConfigureAwait(false);
                break;
            case GongCallKind.Unauthorized:
                await PauseForCredentialsAsync(send, result).ConfigureAwait(false);
                break;
        }
    }

    /// <summary>Any answer but a 401 to a call started after the pause began ends the credentials pause (read only while
    /// a pause is known, which the dispatcher refreshes every turn: no extra round trip per call, and none between a 429
    /// and the block it causes); any answer but a 429 restarts the 429 backoff.</summary>
    private async Task ObserveAsync(GongHttpResult result)
    {
        if (result.HttpStatus is { } status && status != 401 && state.Pause is not null)
        {
            await state.RecordAcceptedAsync(result.StartedAt).ConfigureAwait(false);
        }

        if (result.HttpStatus is { } s && s != 429)
        {
            backoff.Reset();
        }
    }

    private async Task BlockAsync(BatchSend send, GongHttpResult result, GongCall call)
    {
        var o = options.Value;
        var now = time.GetUtcNow();
        var until = result.RetryAfterUntil ?? now + backoff.Next();
        var retryAfter = until - now;
        var clamped = retryAfter > o.MaxRetryAfter;
        if (clamped)
        {
            // A hostile or broken header (2147483647 s, a date decades ahead) must not park every replica for good.
            LogRetryAfterClamped(send.Batch.BatchId, retryAfter.TotalSeconds, o.MaxRetryAfter);
            retryAfter = o.MaxRetryAfter;
            until = now + retryAfter;
        }

        call.RetryAfterSeconds = retryAfter.TotalSeconds;
        until += o.RetryAfterMargin;
        var reason = string.Create(CultureInfo.InvariantCulture,
            $"429 at {now:O}: Retry-After {(result.RetryAfterUntil is null ? "absent, backoff " : "")}{retryAfter.TotalSeconds:0.###}s{(clamped ? " (clamped to Gong:MaxRetryAfter)" : "")} + margin {o.RetryAfterMargin.TotalSeconds:0.###}s");
        LogThrottled(send.Batch.BatchId, retryAfter.TotalSeconds, until);
        try
        {
            await gate.BlockAsync(until, reason, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            // Other replicas learn of the limit from their own 429s; this batch waits out the block on its own.
            LogBlockNotStored(ex, send.Batch.BatchId);
            send.Halt = new SendHalt("TooManyRequests", reason, until);
            return;
        }

        // The gate alone holds the work: a prospect never carries the block as its own available_at.
        send.Halt = new SendHalt("TooManyRequests", reason, null);
    }

    private async Task PauseForCredentialsAsync(BatchSend send, GongHttpResult result)
    {
        var pause = await state.RecordUnauthorizedAsync(result.Error ?? "401 Unauthorized", result.StartedAt).ConfigureAwait(false);
        LogUnauthorized(send.Batch.BatchId, pause.Reason, pause.NextProbeAt);
        // The shared pause holds the work (one probe after NextProbeAt), not the prospects' own available_at.
        send.Halt = new SendHalt("Unauthorized", pause.Reason, null);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gong answered 429 for batch {BatchId}: gate blocked for every replica for {RetryAfterSeconds} s until {Until:O}")]
    private partial void LogThrottled(Guid batchId, double retryAfterSeconds, DateTimeOffset until);

    [LoggerMessage(Level = LogLevel.Error, Message = "Gong refused the credentials (401) for batch {BatchId}: {Reason}; dispatch paused, next probe at {NextProbeAt:O}")]
    private partial void LogUnauthorized(Guid batchId, string reason, DateTimeOffset nextProbeAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gong's Retry-After for batch {BatchId} was {RetryAfterSeconds} s; clamped to Gong:MaxRetryAfter {MaxRetryAfter}")]
    private partial void LogRetryAfterClamped(Guid batchId, double retryAfterSeconds, TimeSpan maxRetryAfter);

    [LoggerMessage(Level = LogLevel.Error, Message = "Rate gate unavailable for batch {BatchId}: the 429 block could not be stored; this batch waits it out on its own")]
    private partial void LogBlockNotStored(Exception exception, Guid batchId);
}
