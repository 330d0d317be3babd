using Microsoft.Extensions.Options;
using Worker.Host.Dispatch;
using Worker.Host.Operations;
using Worker.Persistence.Entities;

namespace Worker.Host.Gong;

/// <summary>
/// Turns each HTTP call of a send into its <c>gong_calls</c> row (written by the dispatcher in the transaction that
/// records the batch's results) and its <c>flow_assignment.gong.*</c> measurements. The row's key (batch id, call id) is
/// fixed here, once per call, so writing the same results twice inserts one row (<c>ON CONFLICT DO NOTHING</c>).
/// </summary>
internal sealed class GongCallRecorder(IOptions<DispatchOptions> dispatch, WorkerMetrics metrics)
{
    /// <summary><see cref="GongCall.Error"/> is cut to this many characters.</summary>
    public const int MaxErrorLength = 2000;

    /// <summary>Records one call of <paramref name="send"/> and adds its row to <see cref="BatchSend.Calls"/>.</summary>
    /// <param name="send">The send the call belongs to.</param>
    /// <param name="endpoint"><c>assign</c> or <c>lookup</c>.</param>
    /// <param name="count">Prospects in the call's body.</param>
    /// <param name="result">What the call came to.</param>
    /// <returns>The row, still open to the 429 handling (<see cref="GongCall.RetryAfterSeconds"/>).</returns>
    public GongCall Record(BatchSend send, string endpoint, int count, GongHttpResult result)
    {
        ArgumentNullException.ThrowIfNull(send);
        ArgumentNullException.ThrowIfNull(result);
        var outcomeClass = GongCallClassifier.ToOutcomeClass(result.Kind);
        metrics.GongCall(endpoint, outcomeClass.ToString(), result.HttpStatus, result.Duration);
        var call = new GongCall
        {
            BatchId = send.Batch.BatchId,
            CallId = Guid.CreateVersion7(result.StartedAt),
            Endpoint = endpoint,
            FlowId = send.Batch.FlowId,
            OwnerEmail = send.Batch.OwnerEmail,
            ProspectCount = count,
            HttpStatus = result.HttpStatus,
            GongRequestId = result.GongRequestId,
            OutcomeClass = outcomeClass,
            Error = result.Error is { } e ? UserText.Truncate(e, MaxErrorLength) : null,
            StartedAt = result.StartedAt,
            DurationMs = result.Duration.TotalMilliseconds,
            // Dispatch:ReplicaName, whose default is POD_NAME, else the machine name (README: gong_calls.replica).
            Replica = dispatch.Value.ReplicaName,
        };
        send.Calls.Add(call);
        return call;
    }
}
