namespace Worker.Persistence.Entities;

/// <summary>
/// Priority lane of a request and of its prospect rows (wire values <c>high</c>, <c>normal</c>, <c>bulk</c>); stored as
/// its name (text). Rows written before priorities existed are <see cref="Normal"/>.
/// </summary>
public enum ProspectPriority
{
    /// <summary>Served first: its group goes before any other once its batch is ready, its rows are claimed first, it
    /// waits <c>Dispatch:HighPriorityMaxBatchDelay</c> at most for company and may use the daily budget's reserve.</summary>
    High,

    /// <summary>The default: fair turns across groups, <c>Dispatch:MaxBatchDelay</c>.</summary>
    Normal,

    /// <summary>Campaign backlogs: served after high and normal, yet never below <c>Dispatch:BulkMinimumShare</c> of the
    /// batches while it has work pending.</summary>
    Bulk,
}
