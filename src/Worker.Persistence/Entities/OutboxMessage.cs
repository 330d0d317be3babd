namespace Worker.Persistence.Entities;

/// <summary>
/// A result event waiting to be published (<c>outbox_messages</c>). Written in the same transaction as the
/// outcomes that complete a request; the relay publishes it with <see cref="Id"/> as the MessageId.
/// </summary>
public sealed class OutboxMessage
{
    /// <summary>Row id and the published MessageId (consumers de-duplicate on it).</summary>
    public Guid Id { get; set; }

    /// <summary>The request the event reports on.</summary>
    public long? AssignmentRequestId { get; set; }

    /// <summary>Full .NET type name of the message, e.g. <c>Worker.Contracts.FlowAssignmentCompleted</c>.</summary>
    public required string MessageType { get; set; }

    /// <summary>The message serialized as camelCase JSON (jsonb).</summary>
    public required string Payload { get; set; }

    /// <summary>When the row was written (UTC).</summary>
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>When the broker confirmed the publish (UTC), or null while waiting.</summary>
    public DateTimeOffset? PublishedAt { get; set; }

    /// <summary>Publish attempts so far.</summary>
    public int Attempts { get; set; }

    /// <summary>Last publish error, if any.</summary>
    public string? LastError { get; set; }

    /// <summary>A relay holds the row until this time (UTC) so two replicas never publish it concurrently.</summary>
    public DateTimeOffset? LockedUntil { get; set; }

    /// <summary>Earliest next publish attempt (UTC) after a failure.</summary>
    public DateTimeOffset AvailableAt { get; set; }

    /// <summary>
    /// When the relay gave the row up for good (UTC): its payload cannot be read back as its message type, so it can
    /// never be published. Null for every row that is published or still waiting. The row stays for ops
    /// (view <c>ops_outbox_dead_lettered</c>) and is never retried.
    /// </summary>
    public DateTimeOffset? FailedAt { get; set; }

    /// <summary>Why the row was given up (<see cref="FailedAt"/>): the reader's error, e.g. the JSON path that did not fit.</summary>
    public string? FailureReason { get; set; }
}
