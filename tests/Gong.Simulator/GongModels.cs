using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gong.Simulator;

/// <summary>Endpoint names used in the call log and in scripted faults.</summary>
public static class SimulatorEndpoints
{
    /// <summary><c>POST /v2/flows/prospects/assign</c>.</summary>
    public const string Assign = "assign";

    /// <summary><c>POST /v2/flows/prospects</c>.</summary>
    public const string Lookup = "lookup";

    /// <summary>Path of the assign endpoint.</summary>
    public const string AssignPath = "/v2/flows/prospects/assign";

    /// <summary>Path of the lookup endpoint.</summary>
    public const string LookupPath = "/v2/flows/prospects";
}

/// <summary>Body of <c>POST /v2/flows/prospects/assign</c>, with Gong's spelling <c>crmProspectsIds</c>.</summary>
public sealed record GongAssignRequest(
    [property: JsonPropertyName("crmProspectsIds")] IReadOnlyList<string?>? CrmProspectsIds,
    [property: JsonPropertyName("flowId")] string? FlowId,
    [property: JsonPropertyName("flowInstanceOwnerEmail")] string? FlowInstanceOwnerEmail);

/// <summary>Body of <c>POST /v2/flows/prospects</c>.</summary>
public sealed record GongLookupRequest(
    [property: JsonPropertyName("crmProspectsIds")] IReadOnlyList<string?>? CrmProspectsIds);

/// <summary>One open flow instance (Gong's PublicApiAssignedFlow).</summary>
public sealed record GongAssignedFlow(
    [property: JsonPropertyName("flowId")] string FlowId,
    [property: JsonPropertyName("flowName")] string FlowName,
    [property: JsonPropertyName("crmProspectId")] string CrmProspectId,
    [property: JsonPropertyName("flowInstanceId")] string FlowInstanceId,
    [property: JsonPropertyName("flowInstanceOwnerEmail")] string FlowInstanceOwnerEmail,
    [property: JsonPropertyName("flowInstanceOwnerFullName")] string FlowInstanceOwnerFullName,
    [property: JsonPropertyName("flowInstanceCreateDate")] string FlowInstanceCreateDate,
    [property: JsonPropertyName("flowInstanceStatus")] string FlowInstanceStatus,
    [property: JsonPropertyName("workspaceId")] string WorkspaceId,
    [property: JsonPropertyName("exclusive")] bool Exclusive);

/// <summary>One prospect Gong declined (Gong's AssignedFlowFailure).</summary>
public sealed record GongAssignFailure(
    [property: JsonPropertyName("flowId")] string FlowId,
    [property: JsonPropertyName("crmProspectId")] string CrmProspectId,
    [property: JsonPropertyName("errorCode")] string ErrorCode,
    [property: JsonPropertyName("errorMessage")] string ErrorMessage);

/// <summary>200 body of the assign endpoint.</summary>
public sealed record GongAssignResponse(
    [property: JsonPropertyName("requestId")] string RequestId,
    [property: JsonPropertyName("prospectsAssigned")] IReadOnlyList<GongAssignedFlow> ProspectsAssigned,
    [property: JsonPropertyName("prospectsNotAssigned")] IReadOnlyList<GongAssignFailure> ProspectsNotAssigned);

/// <summary>200 body of the lookup endpoint: the prospects' open flow instances.</summary>
public sealed record GongLookupResponse(
    [property: JsonPropertyName("requestId")] string RequestId,
    [property: JsonPropertyName("prospectsAssigned")] IReadOnlyList<GongAssignedFlow> ProspectsAssigned);

/// <summary>Gong's error body for 400, 401, 403, 404, 429 and 5xx.</summary>
public sealed record GongError(
    [property: JsonPropertyName("requestId")] string RequestId,
    [property: JsonPropertyName("errors")] IReadOnlyList<string> Errors);

/// <summary>Gong's per-prospect error codes.</summary>
public static class GongErrorCodes
{
    /// <summary>The id is not a valid CRM id.</summary>
    public const string InvalidArgument = "InvalidArgument";

    /// <summary>The prospect cannot be added in its current state (already in the flow, in an exclusive flow, ...).</summary>
    public const string InvalidState = "InvalidState";

    /// <summary>Gong failed for this prospect; trying again later may work.</summary>
    public const string UnexpectedError = "UnexpectedError";
}

/// <summary>JSON settings shared by the endpoints and the admin API (camelCase, enums as strings).</summary>
public static class SimulatorJson
{
    /// <summary>The serializer options.</summary>
    public static JsonSerializerOptions Options { get; } = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    /// <summary>Applies the simulator's settings to <paramref name="options"/> and returns it.</summary>
    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Converters.Add(new JsonStringEnumConverter());
        options.DefaultIgnoreCondition = JsonIgnoreCondition.Never;

        // Gong's messages contain <id>; keep them readable rather than \u003C-escaped.
        options.Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        return options;
    }
}
