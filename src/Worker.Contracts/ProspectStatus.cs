using System.Text.Json.Serialization;

namespace Worker.Contracts;

/// <summary>Final per-prospect status in a <see cref="FlowAssignmentCompleted"/>; serialized as its name.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ProspectStatus>))]
public enum ProspectStatus
{
    /// <summary>Gong created (or already had) a flow instance in the target flow.</summary>
    Assigned,

    /// <summary>Gong declined the prospect (prospectsNotAssigned): see ErrorCode and ErrorMessage.</summary>
    NotAssigned,

    /// <summary>The worker could not get an answer it trusts (e.g. FlowNotFound, Forbidden, MissingFromResponse, RetriesExhausted).</summary>
    Failed,

    /// <summary>Invalid input: never sent to Gong.</summary>
    Rejected,
}
