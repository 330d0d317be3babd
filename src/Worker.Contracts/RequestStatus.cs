using System.Text.Json.Serialization;

namespace Worker.Contracts;

/// <summary>Overall status of a request in a <see cref="FlowAssignmentCompleted"/>; serialized as its name.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<RequestStatus>))]
public enum RequestStatus
{
    /// <summary>Every prospect Assigned.</summary>
    Succeeded,

    /// <summary>At least one prospect Assigned and at least one not.</summary>
    PartiallySucceeded,

    /// <summary>No prospect Assigned (all NotAssigned, Failed or individually Rejected).</summary>
    Failed,

    /// <summary>The request as a whole was invalid (bad flowId, owner email or id list): nothing was sent.</summary>
    Rejected,
}
