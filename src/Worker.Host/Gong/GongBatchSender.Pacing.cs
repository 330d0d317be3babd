using System.Globalization;
using Npgsql;

namespace Worker.Host.Gong;

/// <summary>
/// The parts of a send that keep calls inside Gong's limits at Gong's door: the warm-up before each call on the send's
/// own connection (<see cref="GongConnectionLanes"/>, <see cref="RateGatePacing"/>), and the batch size limit learned
/// from Gong's 400s (<see cref="GongBatchLimit"/>).
/// </summary>
internal sealed partial class GongBatchSender
{
    /// <summary>Gong's newer spec allows 100 prospects per call: smaller calls never wait for a size to be proven.</summary>
    private const int KnownAcceptedBatchSize = 100;

    /// <summary>Warms the send's connection and pipeline with a request Gong does not count, and learns from its
    /// round trip.</summary>
    /// <returns>The margin to record the next call with, or null when the send halted (shutdown).</returns>
    private async Task<TimeSpan?> WarmUpAsync(Send send, CancellationToken cancellationToken)
    {
        try
        {
            // The lane teaches the pacing the round trip it measured at the connection (GongConnectionLanes).
            var warmUp = await client.WarmUpAsync(send.Lane!, cancellationToken).ConfigureAwait(false);
            return pacing.MarginForCall(warmUp.Answered);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            send.Halt = new HaltReason("Shutdown", "the worker stopped while warming the connection to Gong", null);
            return null;
        }
    }

    private async Task<int> EffectiveBatchSizeAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await batchLimit.GetAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            // The rate gate needs Postgres too and will halt the send; the configured size is the safe default here.
            LogGateUnavailable(ex, Guid.Empty);
            return options.Value.MaxBatchSize;
        }
    }

    /// <summary>
    /// Before an assign: re-chunks it when a (newly) learned limit is below its size, and holds this replica's single
    /// slot for calls of a size Gong has not yet answered (above 100), so a lowered limit costs one 400, not one per
    /// in-flight call.
    /// </summary>
    /// <returns><see cref="BatchSizeCheck.Rechunked"/> (do not call: the work was re-queued or the send halted), a
    /// holder to dispose after the call, or null.</returns>
    private async Task<IDisposable?> EnterBatchSizeAsync(Send send, Work work, CancellationToken cancellationToken)
    {
        var count = work.Ids.Count;
        if (await RechunkIfOverLimitAsync(send, work, cancellationToken).ConfigureAwait(false))
        {
            return BatchSizeCheck.Rechunked;
        }

        if (count <= KnownAcceptedBatchSize || batchLimit.IsProven(count))
        {
            return null;
        }

        IDisposable held;
        try
        {
            held = await batchLimit.EnterUnprovenAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            send.Halt = new HaltReason("Shutdown", "the worker stopped while waiting to send", null);
            return BatchSizeCheck.Rechunked;
        }

        // Another call of this replica (or another replica) may have learned the limit, or proven the size, meanwhile.
        if (await RechunkIfOverLimitAsync(send, work, cancellationToken).ConfigureAwait(false))
        {
            held.Dispose();
            return BatchSizeCheck.Rechunked;
        }

        if (batchLimit.IsProven(count))
        {
            held.Dispose();
            return null;
        }

        return held;
    }

    private async Task<bool> RechunkIfOverLimitAsync(Send send, Work work, CancellationToken cancellationToken)
    {
        var limit = await EffectiveBatchSizeAsync(cancellationToken).ConfigureAwait(false);
        if (work.Ids.Count <= limit)
        {
            return false;
        }

        Rechunk(send, work, limit);
        return true;
    }

    /// <summary>After an assign: an answer proves its size; a 400 that names a limit, or both halves of a refused
    /// call answered, teach every replica the limit.</summary>
    private async Task LearnBatchSizeAsync(Send send, Work work, GongHttpResult result)
    {
        var count = work.Ids.Count;
        string? reason = null;
        var limit = 0;
        if (result.Kind == GongCallKind.Answered)
        {
            batchLimit.Prove(count);
            if (work.SplitFrom is { } bisection && bisection.HalfAnswered())
            {
                limit = (bisection.Size + 1) / 2;
                reason = string.Create(CultureInfo.InvariantCulture,
                    $"bisection: a call of {bisection.Size} prospects was refused (400: {bisection.Error}) and both halves were answered");
            }
        }
        else if (result.Kind == GongCallKind.BadRequest && count > 1 && GongBatchLimit.ParseLimit(result.Error) is { } named && named < count)
        {
            limit = named;
            reason = "Gong's 400 for a call of " + count.ToString(CultureInfo.InvariantCulture) + " prospects: " + result.Error;
        }

        if (reason is null)
        {
            return;
        }

        LogBatchLimitLearned(send.Batch.BatchId, limit, reason);
        try
        {
            await batchLimit.LearnAsync(limit, reason, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            // Not stored: this send still re-chunks; others learn it from their own 400.
            LogGateUnavailable(ex, send.Batch.BatchId);
        }
    }

    private static void Rechunk(Send send, Work work, int size)
    {
        foreach (var chunk in work.Ids.Chunk(size).Reverse())
        {
            send.Work.AddFirst(new Work(chunk));
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gong's batch size limit learned from batch {BatchId}: {Limit} prospects per call for every replica ({Reason})")]
    private partial void LogBatchLimitLearned(Guid batchId, int limit, string reason);

    /// <summary>A call refused with 400 and split in halves: both halves answered prove a size limit.</summary>
    private sealed class Bisection(int size, string? error)
    {
        private int answered;

        public int Size { get; } = size;

        public string? Error { get; } = error;

        /// <summary>Counts an answered half; true for the second.</summary>
        public bool HalfAnswered() => Interlocked.Increment(ref answered) == 2;
    }

    /// <summary>Marker results of <see cref="EnterBatchSizeAsync"/>.</summary>
    private sealed class BatchSizeCheck : IDisposable
    {
        public static readonly BatchSizeCheck Rechunked = new();

        public void Dispose()
        {
        }
    }
}
