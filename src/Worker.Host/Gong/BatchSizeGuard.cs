using System.Globalization;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Worker.Host.Gong;

/// <summary>
/// Keeps every assign call within the batch size Gong accepts (<see cref="GongBatchLimit"/>, shared by every replica):
/// cuts calls to a learned limit before they are sent, sends one call of a size Gong has not yet answered (above 100)
/// at a time per replica, and learns the limit from a 400 that names it or from a bisection that proves it.
/// </summary>
internal sealed partial class BatchSizeGuard(GongBatchLimit batchLimit, IOptions<GongOptions> options, ILogger<BatchSizeGuard> logger)
{
    /// <summary>Gong's newer spec allows 100 prospects per call: smaller calls never wait for a size to be proven.</summary>
    private const int KnownAcceptedBatchSize = 100;

    /// <summary>The largest call to make now: the learned limit, else <see cref="GongOptions.MaxBatchSize"/>.</summary>
    public async Task<int> EffectiveBatchSizeAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await batchLimit.GetAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            // The rate gate needs Postgres too and will halt the send; the configured size is the safe default here.
            LogLimitUnavailable(ex, Guid.Empty);
            return options.Value.MaxBatchSize;
        }
    }

    /// <summary>
    /// Before an assign: re-chunks it when a (newly) learned limit is below its size, and holds this replica's single
    /// slot for calls of a size Gong has not yet answered (above 100), so a lowered limit costs one 400, not one per
    /// in-flight call.
    /// </summary>
    /// <returns><see cref="Rechunked"/> (do not call: the work was re-queued or the send halted), a holder to dispose
    /// after the call, or null.</returns>
    public async Task<IDisposable?> EnterAsync(BatchSend send, SendWork work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(send);
        ArgumentNullException.ThrowIfNull(work);
        var count = work.Ids.Count;
        if (await RechunkIfOverLimitAsync(send, work, cancellationToken).ConfigureAwait(false))
        {
            return Rechunked;
        }

        if (count <= KnownAcceptedBatchSize || batchLimit.IsProven(count))
        {
            return null;
        }

        IDisposable held;
        try
        {
            held = await batchLimit.EnterUnprovenAsync(count, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            send.Halt = new SendHalt("Shutdown", "the worker stopped while waiting to send", null);
            return Rechunked;
        }

        // Another call of this replica (or another replica) may have learned the limit, or proven the size, meanwhile.
        if (await RechunkIfOverLimitAsync(send, work, cancellationToken).ConfigureAwait(false))
        {
            held.Dispose();
            return Rechunked;
        }

        if (batchLimit.IsProven(count))
        {
            held.Dispose();
            return null;
        }

        return held;
    }

    /// <summary>The marker <see cref="EnterAsync"/> returns when the call must not be made.</summary>
    public static IDisposable Rechunked { get; } = new NoHold();

    /// <summary>After an assign: an answer proves its size; a 400 that names a limit, or both halves of a refused
    /// call answered, teach every replica the limit.</summary>
    public async Task LearnAsync(BatchSend send, SendWork work, GongHttpResult result)
    {
        ArgumentNullException.ThrowIfNull(send);
        ArgumentNullException.ThrowIfNull(work);
        ArgumentNullException.ThrowIfNull(result);
        var count = work.Ids.Count;
        string? reason = null;
        var limit = 0;
        if (result.Kind == GongCallKind.Answered)
        {
            try
            {
                await batchLimit.ProveAsync(count, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                // Proven in this replica all the same; the others prove it with their own first answer.
                LogLimitUnavailable(ex, send.Batch.BatchId);
            }

            if (work.SplitFrom is { } bisection && bisection.HalfAnswered())
            {
                limit = (bisection.Size + 1) / 2;
                reason = string.Create(CultureInfo.InvariantCulture,
                    $"bisection: a call of {bisection.Size} prospects was refused (400: {bisection.Error}) and both halves were answered");
            }
        }
        else if (NamedLimit(work, result) is { } named)
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
            LogLimitUnavailable(ex, send.Batch.BatchId);
        }
    }

    /// <summary>The size limit a 400 to a call of several ids names, when below the call's size; else null.</summary>
    public static int? NamedLimit(SendWork work, GongHttpResult result) =>
        result.Kind == GongCallKind.BadRequest && work.Ids.Count > 1 && GongBatchLimit.ParseLimit(result.Error) is { } limit && limit < work.Ids.Count
            ? limit
            : null;

    private async Task<bool> RechunkIfOverLimitAsync(BatchSend send, SendWork work, CancellationToken cancellationToken)
    {
        var limit = await EffectiveBatchSizeAsync(cancellationToken).ConfigureAwait(false);
        if (work.Ids.Count <= limit)
        {
            return false;
        }

        send.Rechunk(work, limit);
        return true;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gong's batch size limit learned from batch {BatchId}: {Limit} prospects per call for every replica ({Reason})")]
    private partial void LogBatchLimitLearned(Guid batchId, int limit, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Rate gate unavailable for batch {BatchId}: the learned batch size limit could not be read or stored")]
    private partial void LogLimitUnavailable(Exception exception, Guid batchId);

    private sealed class NoHold : IDisposable
    {
        public void Dispose()
        {
        }
    }
}

/// <summary>A call refused with 400 and split in halves: both halves answered prove a size limit.</summary>
/// <param name="size">Ids in the refused call.</param>
/// <param name="error">Gong's message of the 400.</param>
internal sealed class Bisection(int size, string? error)
{
    private int answered;

    /// <summary>Ids in the refused call.</summary>
    public int Size { get; } = size;

    /// <summary>Gong's message of the 400.</summary>
    public string? Error { get; } = error;

    /// <summary>Counts an answered half; true for the second.</summary>
    public bool HalfAnswered() => Interlocked.Increment(ref answered) == 2;
}
