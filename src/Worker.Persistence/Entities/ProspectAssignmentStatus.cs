namespace Worker.Persistence.Entities;

/// <summary>Lifecycle of one prospect row; stored as its name (text).</summary>
public enum ProspectAssignmentStatus
{
    /// <summary>Waiting to be coalesced into a batch.</summary>
    Pending,

    /// <summary>Claimed into a batch under a lease; a call to Gong may be in progress.</summary>
    InFlight,

    /// <summary>Final: in the target flow.</summary>
    Assigned,

    /// <summary>Final: Gong declined (its errorCode and message).</summary>
    NotAssigned,

    /// <summary>Final: no trusted answer (worker error code and reason).</summary>
    Failed,

    /// <summary>Final: invalid input, never sent.</summary>
    Rejected,
}
