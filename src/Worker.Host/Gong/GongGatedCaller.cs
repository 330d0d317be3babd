using Npgsql;
using Worker.Host.Operations;

namespace Worker.Host.Gong;

/// <summary>
/// Makes one Gong call inside the limits every replica shares:
/// <list type="number">
/// <item>warms the send's connection (a request Gong does not count); the lane (<see cref="GongConnectionLanes"/>)
/// records the warm-up round trips in <see cref="RateGatePacing"/> and this caller reads the margin for its call from
/// <see cref="RateGatePacing.ForCall"/> (with how late it may start);</item>
/// <item>takes a slot from the shared <see cref="PostgresRateGate"/>; a caller too late for its slot sends nothing and
/// moves the slot shortly ahead when no later slot depends on it yet (<see cref="PostgresRateGate.ReclaimAsync"/>),
/// else gives the slot up (<see cref="PostgresRateGate.GiveUpAsync"/>: counted and refunded) and queues again;</item>
/// <item>records the call (<see cref="GongCallRecorder"/>);</item>
/// <item>applies what the answer means for every replica (<see cref="GongAnswerEffects"/>: the 429 block, the 401
/// pause).</item>
/// </list>
/// A 429, a 401, a blocked or unreadable gate and shutdown halt the send (<see cref="BatchSend.Halt"/>).
/// </summary>
internal sealed partial class GongGatedCaller(
    GongApiClient client,
    PostgresRateGate gate,
    RateGatePacing pacing,
    GongCallRecorder recorder,
    GongAnswerEffects effects,
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
        await effects.ApplyAsync(send, result, row).ConfigureAwait(false);
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
            var slot = await TakeSlotAsync(send, () => pacing.ForCall(warm), cancellationToken).ConfigureAwait(false);
            if (slot is null)
            {
                return null;
            }

            LogSlot(send.Batch.BatchId, warm, slot.At, slot.Waited.TotalMilliseconds, slot.Margin.TotalMilliseconds, (slot.StartNoLaterThan - slot.At).TotalMilliseconds);

            var result = await SendWatchedAsync(send, slot, call).ConfigureAwait(false);

            // Held up between the gate and the wire: move the slot to now while no later slot depends on it.
            while (result.Kind == GongCallKind.LateForSlot && await ReclaimAsync(send, slot, cancellationToken).ConfigureAwait(false) is { } moved)
            {
                LogSlotMoved(send.Batch.BatchId, slot.At, moved.At, result.Error);
                slot = moved;
                result = await SendWatchedAsync(send, slot, call).ConfigureAwait(false);
            }

            if (result.Kind != GongCallKind.LateForSlot)
            {
                if (result.Kind is not (GongCallKind.NotSent or GongCallKind.Cancelled))
                {
                    pacing.RecordCallSent();
                }

                return result;
            }

            LogSlotGivenUp(send.Batch.BatchId, slot.At, result.Error);
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

    /// <summary>Makes the call in <paramref name="slot"/> and, as soon as its request reaches the connection (the lane's
    /// departure watch), tells the gate when: a call held up after the lane's check (a GC pause, a descheduled thread)
    /// has its recorded arrival moved while the slot a second later is not taken yet
    /// (<see cref="PostgresRateGate.DepartedAsync"/>). The report runs beside the call, which may take seconds.</summary>
    private async Task<GongHttpResult> SendWatchedAsync(BatchSend send, GateSlot slot, Func<GongLane, DateTimeOffset?, Task<GongHttpResult>> call)
    {
        var lane = send.Lane!;
        var report = ReportDepartureAsync(lane.WatchDeparture(), slot, send.Batch.BatchId);
        try
        {
            return await call(lane, slot.StartNoLaterThan).ConfigureAwait(false);
        }
        finally
        {
            lane.EndDeparture();
            await report.ConfigureAwait(false);
        }
    }

    private async Task ReportDepartureAsync(Task<DateTimeOffset?> departure, GateSlot slot, Guid batchId)
    {
        if (await departure.ConfigureAwait(false) is not { } departed)
        {
            return;
        }

        try
        {
            if (await gate.DepartedAsync(slot, departed, CancellationToken.None).ConfigureAwait(false) is { } moved)
            {
                LogLateDeparture((departed - slot.At).TotalMilliseconds, batchId, moved);
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            LogGateUnavailable(ex, batchId);
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

    private async Task<GateSlot?> TakeSlotAsync(BatchSend send, Func<GateMargin> margin, CancellationToken cancellationToken)
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

    [LoggerMessage(Level = LogLevel.Information, Message = "A call of batch {BatchId} reached its connection {LateMs:F1} ms after its rate-gate slot; its recorded arrival moved: {Moved}")]
    private partial void LogLateDeparture(double lateMs, Guid batchId, bool moved);

    [LoggerMessage(Level = LogLevel.Debug, Message = "A call of batch {BatchId} (warm-up answered: {Warm}) has its rate-gate slot at {SlotAt:O} after waiting {WaitedMs:F0} ms, margin {MarginMs:F1} ms, latest start {LateStartMs:F1} ms after it")]
    private partial void LogSlot(Guid batchId, bool warm, DateTimeOffset slotAt, double waitedMs, double marginMs, double lateStartMs);

    [LoggerMessage(Level = LogLevel.Debug, Message = "A call of batch {BatchId} was late for its rate-gate slot at {SlotAt:O} ({Late}); the slot moved to {MovedTo:O}")]
    private partial void LogSlotMoved(Guid batchId, DateTimeOffset slotAt, DateTimeOffset movedTo, string? late);

    [LoggerMessage(Level = LogLevel.Information, Message = "A call of batch {BatchId} was late for its rate-gate slot at {SlotAt:O} ({Late}) and the slot could not move (a later slot depends on it, the move would exceed half a spacing, a 429 block is in force, or the gate could not be read): the slot is given up, the call waits for another")]
    private partial void LogSlotGivenUp(Guid batchId, DateTimeOffset slotAt, string? late);

    [LoggerMessage(Level = LogLevel.Error, Message = "Rate gate unavailable for batch {BatchId}; the batch goes back to Pending")]
    private partial void LogGateUnavailable(Exception exception, Guid batchId);
}
