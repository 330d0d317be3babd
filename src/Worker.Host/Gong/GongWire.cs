using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Worker.Host.Gong;

// Gong's JSON shapes (Gong's API documentation of POST /v2/flows/prospects/assign and POST /v2/flows/prospects,
// summarized in docs/gong-api-facts.md).
// Reading is tolerant: unknown fields are ignored, absent lists are empty, ids arrive as strings or as numbers
// (kept as their exact digits), and dates with 0-7 fractional digits parse or become null rather than failing.

/// <summary>Body of <c>POST /v2/flows/prospects/assign</c>. Note Gong's spelling <c>crmProspectsIds</c>.</summary>
internal sealed record GongAssignRequest(
    [property: JsonPropertyName("crmProspectsIds")] IReadOnlyList<string> CrmProspectsIds,
    [property: JsonPropertyName("flowId")] string FlowId,
    [property: JsonPropertyName("flowInstanceOwnerEmail")] string FlowInstanceOwnerEmail);

/// <summary>Body of the lookup <c>POST /v2/flows/prospects</c>.</summary>
internal sealed record GongLookupRequest(
    [property: JsonPropertyName("crmProspectsIds")] IReadOnlyList<string> CrmProspectsIds);

/// <summary>A 200 answer of assign or lookup (lookup has no <c>prospectsNotAssigned</c>).</summary>
internal sealed class GongProspectsResponse
{
    public string? RequestId { get; set; }
    public List<GongAssignedFlow?>? ProspectsAssigned { get; set; }
    public List<GongAssignmentFailure?>? ProspectsNotAssigned { get; set; }
}

/// <summary>PublicApiAssignedFlow.</summary>
internal sealed class GongAssignedFlow
{
    public string? FlowId { get; set; }
    public string? FlowName { get; set; }
    public string? CrmProspectId { get; set; }
    public string? FlowInstanceId { get; set; }
    public string? FlowInstanceOwnerEmail { get; set; }
    public DateTimeOffset? FlowInstanceCreateDate { get; set; }
    public string? FlowInstanceStatus { get; set; }
    public string? WorkspaceId { get; set; }
    public bool? Exclusive { get; set; }
}

/// <summary>AssignedFlowFailure.</summary>
internal sealed class GongAssignmentFailure
{
    public string? FlowId { get; set; }
    public string? CrmProspectId { get; set; }
    public string? ErrorCode { get; set; }
    public string? ErrorMessage { get; set; }
}

/// <summary>Error body of 4xx/5xx: <c>{"requestId": "..", "errors": [".."]}</c>.</summary>
internal sealed class GongErrorResponse
{
    public string? RequestId { get; set; }
    public List<JsonElement>? Errors { get; set; }

    /// <summary>The error strings joined with "; " (non-string items as their JSON text), or null.</summary>
    public string? Message()
    {
        if (Errors is not { Count: > 0 })
        {
            return null;
        }

        var parts = Errors
            .Select(e => e.ValueKind == JsonValueKind.String ? e.GetString() : e.GetRawText())
            .Where(s => !string.IsNullOrWhiteSpace(s));
        var joined = string.Join("; ", parts);
        return joined.Length == 0 ? null : joined;
    }
}

/// <summary>
/// The serializer settings of the Gong wire: camelCase names (the response classes' properties are Gong's names), unknown
/// members ignored, and every string, date and boolean read leniently (<see cref="LenientStringConverter"/>,
/// <see cref="LenientDateConverter"/>, <see cref="LenientBooleanConverter"/>).
/// </summary>
internal static class GongJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        AllowTrailingCommas = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        Converters = { new LenientStringConverter(), new LenientDateConverter(), new LenientBooleanConverter() },
    };

    /// <summary>Parses a 200 body; null when it is not a JSON object.</summary>
    public static GongProspectsResponse? ParseProspects(string body)
    {
        try
        {
            return string.IsNullOrWhiteSpace(body) ? null : JsonSerializer.Deserialize<GongProspectsResponse>(body, Options);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Parses an error body; null when it is not Gong's error object.</summary>
    public static GongErrorResponse? ParseError(string body)
    {
        try
        {
            return string.IsNullOrWhiteSpace(body) ? null : JsonSerializer.Deserialize<GongErrorResponse>(body, Options);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>Reads a string, or a number as its exact digits (a 19-digit id exceeds 2^53 and must not pass through
/// a double), or a boolean as text; null for anything else.</summary>
internal sealed class LenientStringConverter : JsonConverter<string?>
{
    public override bool HandleNull => true;

    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                return reader.GetString();
            case JsonTokenType.Number:
                return Encoding.UTF8.GetString(reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan.ToArray());
            case JsonTokenType.True:
                return "true";
            case JsonTokenType.False:
                return "false";
            case JsonTokenType.StartObject:
            case JsonTokenType.StartArray:
                reader.Skip();
                return null;
            default:
                return null;
        }
    }

    // Writing is not lenient: what the default converter writes (the value, or null).
    public override void Write(Utf8JsonWriter writer, string? value, JsonSerializerOptions options) =>
        JsonSerializer.Serialize(writer, value, JsonSerializerOptions.Default);
}

/// <summary>Reads an ISO-8601 date with 0-7 fractional digits and an offset or <c>Z</c>; null when absent or unreadable.</summary>
internal sealed class LenientDateConverter : JsonConverter<DateTimeOffset?>
{
    public override bool HandleNull => true;

    public override DateTimeOffset? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            reader.Skip();
            return null;
        }

        var text = reader.GetString();
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var value)
            ? value
            : null;
    }

    public override void Write(Utf8JsonWriter writer, DateTimeOffset? value, JsonSerializerOptions options) =>
        JsonSerializer.Serialize(writer, value, JsonSerializerOptions.Default);
}

/// <summary>Reads true/false, or "true"/"false" as text; null otherwise.</summary>
internal sealed class LenientBooleanConverter : JsonConverter<bool?>
{
    public override bool HandleNull => true;

    public override bool? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.True:
                return true;
            case JsonTokenType.False:
                return false;
            case JsonTokenType.String:
                return bool.TryParse(reader.GetString(), out var b) ? b : null;
            default:
                reader.Skip();
                return null;
        }
    }

    public override void Write(Utf8JsonWriter writer, bool? value, JsonSerializerOptions options) =>
        JsonSerializer.Serialize(writer, value, JsonSerializerOptions.Default);
}
