using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

/// <summary>
/// Sends one claimed batch to Gong and turns every answer into per-prospect results
/// (DESIGN.md "Gong client"): takes rate-gate slots, calls <c>POST /v2/flows/prospects/assign</c>,
/// classifies the result, bisects on 400, reconciles through <c>POST /v2/flows/prospects</c> after an
/// unknown outcome. The dispatcher owns claiming, leases and writing the results.
/// </summary>
public interface IGongBatchSender
{
    /// <summary>
    /// Sends <paramref name="batch"/> and returns exactly one <see cref="ProspectResult"/> per id of the batch
    /// (same ids, any order) plus one <see cref="GongCall"/> per HTTP call made (assign and lookup).
    /// </summary>
    /// <param name="batch">One (flow, owner) group, unique ids, at most MaxBatchSize.</param>
    /// <param name="cancellationToken">Shutdown: a call already sent is not abandoned silently; its prospects come back as
    /// <see cref="ProspectResultKind.RetryLater"/> (error code <c>Shutdown</c>) with <see cref="ProspectResult.ReconcileFirst"/>
    /// set, which uses one attempt (<c>GongAnswerMapper.Unknown</c>). Prospects whose call had not been sent when shutdown
    /// came back as <see cref="ProspectResultKind.Requeue"/> without using an attempt.</param>
    /// <returns>Results for every prospect; never throws for an HTTP or network failure.</returns>
    Task<BatchResult> SendAsync(AssignmentBatch batch, CancellationToken cancellationToken);
}
