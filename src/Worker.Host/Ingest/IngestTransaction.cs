using Npgsql;
using Worker.Contracts;
using Worker.Host.Operations;

namespace Worker.Host.Ingest;

/// <summary>
/// Stores a batch of validated requests in one Postgres transaction and says, per request, what that did: the
/// requests (<see cref="AssignmentRequestRows"/>), then for the newly stored ones their prospect rows
/// (<see cref="ProspectRowsCopy"/>) and the outbox row of those that complete at once (<see cref="OutboxRowsCopy"/>).
/// </summary>
/// <remarks>
/// Idempotency rests on the unique index on <c>assignment_requests.request_id</c>: concurrent inserts of one
/// requestId (two replicas, or a redelivery) wait on each other in Postgres and exactly one row wins; the loser
/// compares content hashes.
/// </remarks>
internal sealed class IngestTransaction(NpgsqlDataSource dataSource, TimeProvider timeProvider, WorkerMetrics metrics)
{
    /// <summary>Writes <paramref name="batch"/> and commits; the results are in the order of the batch.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable, failed, or refused a value (nothing of the batch is stored).</exception>
    public async Task<IngestWriteResult[]> WriteAsync(IReadOnlyList<ValidatedRequest> batch)
    {
        var now = timeProvider.GetUtcNow();

        // One row per requestId reaches the INSERT; later copies in the batch are judged by hash after commit.
        var first = new Dictionary<string, ValidatedRequest>(StringComparer.Ordinal);
        foreach (var request in batch)
        {
            first.TryAdd(request.RequestId, request);
        }

        var candidates = first.Values.ToList();
        await using var connection = await dataSource.OpenConnectionAsync().ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync().ConfigureAwait(false);

        var inserted = await AssignmentRequestRows.InsertAsync(connection, transaction, candidates, now).ConfigureAwait(false);
        var existing = await AssignmentRequestRows.ReadExistingHashesAsync(
            connection, transaction, candidates.Where(r => !inserted.ContainsKey(r.RequestId)).Select(r => r.RequestId).ToArray()).ConfigureAwait(false);

        var stored = candidates.Where(r => inserted.ContainsKey(r.RequestId)).ToList();
        await ProspectRowsCopy.CopyAsync(connection, stored, inserted, now).ConfigureAwait(false);
        await OutboxRowsCopy.CopyAsync(connection, stored.Where(r => r.CompletesAtOnce).ToList(), inserted, now).ConfigureAwait(false);
        await transaction.CommitAsync().ConfigureAwait(false);

        var results = new IngestWriteResult[batch.Count];
        for (var i = 0; i < batch.Count; i++)
        {
            var request = batch[i];
            if (inserted.ContainsKey(request.RequestId) && ReferenceEquals(first[request.RequestId], request))
            {
                results[i] = IngestWriteResult.Stored;
                RecordStored(request);
                continue;
            }

            var storedHash = inserted.ContainsKey(request.RequestId) ? first[request.RequestId].ContentHash : existing.GetValueOrDefault(request.RequestId);
            results[i] = string.Equals(storedHash, request.ContentHash, StringComparison.Ordinal) ? IngestWriteResult.Duplicate : IngestWriteResult.Conflict;
            metrics.MessageIngested(results[i] == IngestWriteResult.Duplicate ? "duplicate" : "conflict");
        }

        return results;
    }

    private void RecordStored(ValidatedRequest request)
    {
        metrics.MessageIngested(request.CompletesAtOnce ? "rejected" : "accepted");
        if (request.IsRejected && request.ValidIds.Count > 0)
        {
            metrics.ProspectOutcomes(nameof(ProspectStatus.Rejected), IngestRejections.RequestRejectedCode, request.ValidIds.Count);
        }

        if (request.RejectedIds.Count > 0)
        {
            metrics.ProspectOutcomes(nameof(ProspectStatus.Rejected), IngestRejections.InvalidProspectIdCode, request.RejectedIds.Count);
        }
    }
}
