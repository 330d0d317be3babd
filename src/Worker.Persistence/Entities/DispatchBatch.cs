namespace Worker.Persistence.Entities;

/// <summary>
/// A claimed batch of at most MaxBatchSize prospects of one (flow, owner) group (<c>dispatch_batches</c>).
/// The lease says until when the claiming replica owns it; an expired lease is reclaimed by any replica
/// and treated as outcome unknown (reconcile before resending).
/// </summary>
public sealed class DispatchBatch
{
    /// <summary>Batch id (also on the prospect rows and gong_calls).</summary>
    public Guid Id { get; set; }

    /// <summary>Gong flow id.</summary>
    public required string FlowId { get; set; }

    /// <summary>Owner email, lower-cased.</summary>
    public required string OwnerEmail { get; set; }

    /// <summary>Unique prospect ids in the batch (≤ MaxBatchSize).</summary>
    public int ProspectCount { get; set; }

    /// <summary>The batch's lane: High when it carries a high-priority row, else Normal when it carries a normal one,
    /// else Bulk. Normal for batches claimed before priorities existed.</summary>
    public ProspectPriority Priority { get; set; } = ProspectPriority.Normal;

    /// <summary>Replica (pod name / host) holding the lease.</summary>
    public required string ClaimedBy { get; set; }

    /// <summary>When the batch was claimed (UTC).</summary>
    public DateTimeOffset ClaimedAt { get; set; }

    /// <summary>Lease end (UTC); the holder extends it while the call runs.</summary>
    public DateTimeOffset LeaseExpiresAt { get; set; }

    /// <summary>True once the batch was reclaimed after an expired lease (its outcome was unknown).</summary>
    public bool Reclaimed { get; set; }

    /// <summary>When the batch's outcomes were committed or its prospects released (UTC), or null while open.</summary>
    public DateTimeOffset? CompletedAt { get; set; }
}
