using System.Globalization;
using Microsoft.Extensions.Options;
using Npgsql;
using Worker.Host.Operations;
using Worker.Persistence.Entities;

namespace Worker.Host.Gong;

/// <summary>
/// Makes one Gong call inside the limits every replica shares, and owns what an answer means for all of them:
/// <list type="number">
/// <item>warms the send's connection (a request Gong does not count); the lane (<see cref="GongConnectionLanes"/>)
/// records the warm-up round trips in <see cref="RateGatePacing"/> and this caller reads the margin for its call from
/// <see cref="RateGatePacing.MarginForCall"/>;</item>
/// <item>takes a slot from the shared <see cref="PostgresRateGate"/>; a caller too late for its slot sends nothing and
/// moves the slot shortly ahead when no later slot depends on it yet (<see cref="PostgresRateGate.ReclaimAsync"/>),
/// else gives the slot up (<see cref="PostgresRateGate.GiveUpAsync"/>: counted and refunded) and queues again;</item>
/// <item>records the call (<see cref="GongCallRecorder"/>);</item>
/// <item>429: blocks the gate for every replica until Retry-After (seconds or HTTP date; without it
/// <see cref="TooManyRequestsBackoff"/>), clamped to <c>MaxRetryAfter</c>, plus <c>RetryAfterMargin</c>; any other
/// status restarts that backoff;</item>
/// <item>401: the credentials pause every replica shares (<see cref="GongDispatchState"/>: one step of backoff per
/// refused probe); any other answer to a call started after the pause began ends it.</item>
/// </list>
/// A 429, a 401, a blocked or unreadable gate and shutdown halt the send (<see cref="BatchSend.Halt"/>). After a 429 or a
/// 401 the shared block or pause holds the work, not the prospects' own <c>available_at</c> (unless the block could not
/// be stored).
/// </summary>
internal sealed partial class GongGatedCaller(
    GongApiClient client,
    PostgresRateGate gate,
    RateGatePacing pacing,
    GongDispatchState state,
    GongGatedCaller.TooManyRequestsBackoff backoff,
    GongCallRecorder recorder,
    IOptions<GongOptions> options,
    WorkerMetrics metrics,
    TimeProvider time,
    ILogger<GongGatedCaller> logger)
{
    /// <summary>Makes <paramref name="call"/> in a rate-gate slot on the send's lane and records it.</summary>
    /// <param name="send">The send; its <see cref="BatchSend.Lane"/> must be set.</param>
    /// <param name="endpoint"><c>assign</c> or <c>lookup</c> (the <c>gong_calls</c> row).</param>
    /// <param name="count">Prospects in the call.</param>
    /// <param name="call">The HTTP call, given the lane and the latest start its slot allows.</param>
    /// <param name="cancellationToken">Shutdown.</param>
    /// <returns>The call's result (after a 429 or a 401 the send is halted too), or null when no call was made and the
    /// send halted (gate blocked or unavailable, shutdown).</returns>
    public async Task<GongHttpResult?> CallAsync(
        BatchSend send,
        string endpoint,
        int count,
        Func<GongLane, DateTimeOffset?, Task<GongHttpResult>> call,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(send);
        ArgumentNullException.ThrowIfNull(call);
        var result = await CallInSlotAsync(send, call, cancellationToken).ConfigureAwait(false);
        if (result is null)
        {
            return null;
        }

        var row = recorder.Record(send, endpoint, count, result);
        await ObserveAsync(result).ConfigureAwait(false);
        switch (result.Kind)
        {
            case GongCallKind.TooManyRequests:
                await BlockAsync(send, result, row).ConfigureAwait(false);
                break;
            case GongCallKind.Unauthorized:
                await PauseForCredentialsAsync(send, result).ConfigureAwait(false);
                break;
        }

        return result;
    }

    private async Task<GongHttpResult?> CallInSlotAsync(BatchSend send, Func<GongLane, DateTimeOffset?, Task<GongHttpResult>> call, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (await WarmUpAsync(send, cancellationToken).ConfigureAwait(false) is not { } warm)
            {
                return null;
            }

            // The margin is read when the slot is taken, which may be seconds after the warm-up (a queue of slots):
            // what the pacing has learned by then, and the young process's floor as it is then.
            var slot = await TakeSlotAsync(send, () => pacing.MarginForCall(warm), cancellationToken).ConfigureAwait(false);
            if (slot is null)
            {
                return null;
            }

            var result = await call(send.Lane!, slot.StartNoLaterThan).ConfigureAwait(false);

            // Held up between the gate and the wire: move the slot to now while no later slot depends on it.
            while (result.Kind == GongCallKind.LateForSlot && await ReclaimAsync(send, slot, cancellationToken).ConfigureAwait(false) is { } moved)
            {
                slot = moved;
                result = await call(send.Lane!, slot.StartNoLaterThan).ConfigureAwait(false);
            }

            if (result.Kind != GongCallKind.LateForSlot)
            {
                if (result.Kind is not (GongCallKind.NotSent or GongCallKind.Cancelled))
                {
                    pacing.RecordCallSent();
                }

                return result;
            }

            try
            {
                await gate.GiveUpAsync(slot, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException)
            {
                // The daily count stays one too high: conservative.
                LogGateUnavailable(ex, send.Batch.BatchId);
            }
        }
    }

    /// <summary>Moves a slot the call was late for (<see cref="PostgresRateGate.ReclaimAsync"/>); null when it cannot
    /// move or the gate cannot be reached (then the slot is given up).</summary>
    private async Task<GateSlot?> ReclaimAsync(BatchSend send, GateSlot slot, CancellationToken cancellationToken)
    {
        try
        {
            return await gate.ReclaimAsync(slot, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException)
        {
            LogGateUnavailable(ex, send.Batch.BatchId);
            return null;
        }
    }

    /// <summary>Warms the send's connection and pipeline with a request Gong does not count, and learns from its
    /// round trip.</summary>
    /// <returns>Whether the warm-up was answered (the call starts on a warm connection), or null when the send halted
    /// (shutdown).</returns>
    private async Task<bool?> WarmUpAsync(BatchSend send, CancellationToken cancellationToken)
    {
        try
        {
            // The lane teaches the pacing the round trip it measured at the connection (GongConnectionLanes).
            var warmUp = await client.WarmUpAsync(send.Lane!, cancellationToken).ConfigureAwait(false);
            return warmUp.Answered;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            send.Halt = new SendHalt("Shutdown", "the worker stopped while warming the connection to Gong", null);
            return null;
        }
    }

    private async Task<GateSlot?> TakeSlotAsync(BatchSend send, Func<TimeSpan> margin, CancellationToken cancellationToken)
    {
        GateSlot slot;
        try
        {
            slot = await gate.WaitForSlotAsync(margin, send.Batch.Priority, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            send.Halt = new SendHalt("Shutdown", "the worker stopped while waiting for the rate gate", null);
            return null;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            LogGateUnavailable(ex, send.Batch.BatchId);
            send.Halt = new SendHalt("RateGateUnavailable", "the rate gate in Postgres could not be read: " + ex.Message, time.GetUtcNow() + TimeSpan.FromSeconds(5));
            return null;
        }

        metrics.RateGateWait(slot.Waited);
        if (!slot.Taken)
        {
            // A block (429, spent daily budget) is held by the gate alone, so lifting it releases the work at once; only
            // a long queue of slots is the batch's own wait.
            DateTimeOffset? blockedUntil;
            try
            {
                blockedUntil = await gate.GetBlockedUntilAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                blockedUntil = slot.At;
            }

            send.Halt = new SendHalt("RateGateBlocked", slot.Reason ?? "rate gate blocked", blockedUntil is null ? slot.At : null);
            return null;
        }

        return slot;
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
            LogGateUnavailable(ex, send.Batch.BatchId);
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

    [LoggerMessage(Level = LogLevel.Error, Message = "Rate gate unavailable for batch {BatchId}; the batch goes back to Pending")]
    private partial void LogGateUnavailable(Exception exception, Guid batchId);

    /// <summary>The gate block for a 429 without Retry-After: <c>TooManyRequestsBackoff × 2^(such 429s in a row − 1)</c>,
    /// capped at <c>TooManyRequestsMaxBackoff</c>. One per process (a singleton), thread-safe.</summary>
    internal sealed class TooManyRequestsBackoff(IOptions<GongOptions> options)
    {
        private readonly Lock sync = new();
        private int inARow;

        /// <summary>Counts a 429 without Retry-After and returns how long to block the gate for it.</summary>
        public TimeSpan Next()
        {
            var o = options.Value;
            lock (sync)
            {
                inARow = Math.Min(inARow + 1, 30);
                return TimeSpan.FromTicks(Math.Min(
                    o.TooManyRequestsMaxBackoff.Ticks,
                    o.TooManyRequestsBackoff.Ticks * (long)Math.Pow(2, Math.Min(inARow - 1, 20))));
            }
        }

        /// <summary>Records an answer other than 429: the backoff starts again from its base.</summary>
        public void Reset()
        {
            lock (sync)
            {
                inARow = 0;
            }
        }
    }
}
