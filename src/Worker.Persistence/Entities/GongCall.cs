namespace Worker.Persistence.Entities;

/// <summary>One row per HTTP call to Gong (<c>gong_calls</c>): the audit of quota use and batch fill.</summary>
public sealed class GongCall
{
    /// <summary>Surrogate key.</summary>
    public long Id { get; set; }

    /// <summary>The dispatch batch the call served.</summary>
    public Guid? BatchId { get; set; }

    /// <summary>The call's own id, made by the sender before the call: with <see cref="BatchId"/> the idempotency key
    /// of the row, so writing a batch's results again after a commit whose answer was lost inserts nothing
    /// (null on rows written before it existed).</summary>
    public Guid? CallId { get; set; }

    /// <summary>"assign" (POST /v2/flows/prospects/assign) or "lookup" (POST /v2/flows/prospects).</summary>
    public required string Endpoint { get; set; }

    /// <summary>Gong flow id of the group.</summary>
    public required string FlowId { get; set; }

    /// <summary>Owner email of the group, lower-cased.</summary>
    public required string OwnerEmail { get; set; }

    /// <summary>Prospect ids sent in this call (≤ MaxBatchSize).</summary>
    public int ProspectCount { get; set; }

    /// <summary>HTTP status, or null when no response arrived (timeout, refused, reset).</summary>
    public int? HttpStatus { get; set; }

    /// <summary>Gong's requestId from the response body, when present.</summary>
    public string? GongRequestId { get; set; }

    /// <summary>Classification of the result.</summary>
    public GongCallOutcomeClass OutcomeClass { get; set; }

    /// <summary>Short error description (exception type, Gong's errors), never secrets.</summary>
    public string? Error { get; set; }

    /// <summary>Retry-After honoured, in seconds, for a 429.</summary>
    public double? RetryAfterSeconds { get; set; }

    /// <summary>When the HTTP call started (UTC).</summary>
    public DateTimeOffset StartedAt { get; set; }

    /// <summary>Duration in milliseconds.</summary>
    public double DurationMs { get; set; }

    /// <summary>Replica that made the call.</summary>
    public string? Replica { get; set; }
}
