using System.Text.Json;
using Worker.Contracts;
using Worker.Persistence.Entities;

namespace Worker.Host.Relay;

/// <summary>
/// The one way result events enter and leave <c>outbox_messages</c>: camelCase JSON, enums as names,
/// <see cref="OutboxMessage.Id"/> becomes the published MessageId.
/// </summary>
public static class OutboxEvents
{
    /// <summary>The <see cref="OutboxMessage.MessageType"/> of a <see cref="FlowAssignmentCompleted"/> row.</summary>
    public static readonly string CompletedMessageType = typeof(FlowAssignmentCompleted).FullName!;

    /// <summary>Wire JSON options: camelCase, as DESIGN.md's contract and MassTransit's serializer use.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Creates the outbox row for a completed request (add it in the transaction that completes the request).</summary>
    /// <param name="completed">The event.</param>
    /// <param name="assignmentRequestId">assignment_requests.id of the request.</param>
    /// <param name="now">Commit time (UTC): CreatedAt and AvailableAt.</param>
    public static OutboxMessage ForCompleted(FlowAssignmentCompleted completed, long assignmentRequestId, DateTimeOffset now) => new()
    {
        Id = Guid.CreateVersion7(now),
        AssignmentRequestId = assignmentRequestId,
        MessageType = CompletedMessageType,
        Payload = JsonSerializer.Serialize(completed, Json),
        CreatedAt = now,
        AvailableAt = now,
    };

    /// <summary>Reads a <see cref="FlowAssignmentCompleted"/> back from its row.</summary>
    /// <exception cref="InvalidOperationException">The row holds another message type or unreadable JSON.</exception>
    public static FlowAssignmentCompleted ReadCompleted(OutboxMessage row)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.MessageType != CompletedMessageType)
        {
            throw new InvalidOperationException($"Outbox row {row.Id} holds {row.MessageType}, not {CompletedMessageType}.");
        }

        return JsonSerializer.Deserialize<FlowAssignmentCompleted>(row.Payload, Json)
            ?? throw new InvalidOperationException($"Outbox row {row.Id} has an empty payload.");
    }
}
