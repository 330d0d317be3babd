using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Worker.Contracts;

namespace Worker.Host.Ingest;

/// <summary>
/// How the text fields of <see cref="AssignProspectsToFlow"/> are read from JSON (MassTransit's System.Text.Json
/// options, envelope and plain JSON alike). Everything is read as System.Text.Json reads it, except that a string
/// holding an escaped unpaired surrogate (<c>"\ud83d"</c>, as Python's json.dumps writes a lone surrogate) is read
/// as that text instead of failing the whole body, so the validator can reject just that id (or the request, or
/// send a requestId it cannot answer to to the error queue) and name the field.
/// </summary>
/// <remarks>
/// System.Text.Json refuses such a string with "The JSON value could not be converted to System.String"
/// (InvalidOperationException inside GetString), which would send the whole message, valid ids included, to the
/// error queue. Raw bytes that are not UTF-8 are still refused (the body is not JSON text): the error queue, with the
/// field's JSON path in the reason.
/// </remarks>
public static class AssignProspectsToFlowJson
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Adds the lenient string reading to <paramref name="options"/> for the properties of
    /// <see cref="AssignProspectsToFlow"/> only (a type-info modifier); returns the same options.
    /// </summary>
    /// <param name="options">Options not yet in use (MassTransit's <c>ConfigureJsonSerializerOptions</c> hands over a fresh copy).</param>
    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.TypeInfoResolver = (options.TypeInfoResolver ?? new DefaultJsonTypeInfoResolver()).WithAddedModifier(Modify);
        return options;
    }

    private static void Modify(JsonTypeInfo info)
    {
        if (info.Type != typeof(AssignProspectsToFlow))
        {
            return;
        }

        foreach (var property in info.Properties)
        {
            var path = "$." + property.Name;
            if (property.PropertyType == typeof(string))
            {
                property.CustomConverter = new LenientStringConverter(path);
            }
            else if (property.PropertyType == typeof(IReadOnlyList<string?>))
            {
                property.CustomConverter = new LenientStringListConverter(path);
            }
        }
    }

    /// <summary>Reads a JSON string (or null) at the reader's token, keeping escaped unpaired surrogates.</summary>
    /// <param name="reader">The reader, at the value's token.</param>
    /// <param name="path">The value's JSON path for the error message, e.g. <c>$.flowId</c> or <c>$.crmProspectIds[3]</c>.</param>
    /// <exception cref="JsonException">The token is not a string or null, or its bytes are not UTF-8; the message starts with <paramref name="path"/>.</exception>
    internal static string? ReadString(ref Utf8JsonReader reader, string path)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (reader.TokenType != JsonTokenType.String)
        {
            throw WrongType(path, "a string or null", reader.TokenType);
        }

        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException) when (reader.ValueIsEscaped)
        {
            var raw = reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan.ToArray();
            return Unescape(raw) ?? throw NotUtf8(path);
        }
        catch (InvalidOperationException)
        {
            throw NotUtf8(path);
        }
    }

    private static JsonException WrongType(string path, string expected, JsonTokenType found) =>
        new($"{path}: expected {expected}, found a JSON {TokenName(found)}. The message was not stored; send the field as the contract says (contracts/AssignProspectsToFlow.schema.json).");

    private static JsonException NotUtf8(string path) =>
        new($"{path}: the string's bytes are not valid UTF-8. The message was not stored.");

    private static string TokenName(JsonTokenType token) => token switch
    {
        JsonTokenType.Number => "number",
        JsonTokenType.True or JsonTokenType.False => "boolean",
        JsonTokenType.StartObject => "object",
        JsonTokenType.StartArray => "array",
        JsonTokenType.String => "string",
        _ => token.ToString(),
    };

    /// <summary>JSON string unescaping that keeps <c>\uXXXX</c> escapes of unpaired surrogates as they are; null when the unescaped bytes are not UTF-8.</summary>
    private static string? Unescape(ReadOnlySpan<byte> raw)
    {
        var builder = new StringBuilder(raw.Length);
        try
        {
            var i = 0;
            while (i < raw.Length)
            {
                var backslash = raw[i..].IndexOf((byte)'\\');
                var run = backslash < 0 ? raw[i..] : raw.Slice(i, backslash);
                builder.Append(StrictUtf8.GetString(run));
                if (backslash < 0)
                {
                    break;
                }

                // The reader validated the escape syntax already: one of \" \\ \/ \b \f \n \r \t \uXXXX.
                i += backslash + 1;
                var escape = (char)raw[i];
                if (escape == 'u')
                {
                    builder.Append((char)int.Parse(Encoding.ASCII.GetString(raw.Slice(i + 1, 4)), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture));
                    i += 5;
                    continue;
                }

                builder.Append(escape switch
                {
                    'b' => '\b',
                    'f' => '\f',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    _ => escape,
                });
                i++;
            }
        }
        catch (DecoderFallbackException)
        {
            return null;
        }

        return builder.ToString();
    }

    private sealed class LenientStringConverter(string path) : JsonConverter<string?>
    {
        public override bool HandleNull => true;

        public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => ReadString(ref reader, path);

        // WriteStringValue writes JSON null for null.
        public override void Write(Utf8JsonWriter writer, string? value, JsonSerializerOptions options) => writer?.WriteStringValue(value);
    }

    private sealed class LenientStringListConverter(string path) : JsonConverter<IReadOnlyList<string?>?>
    {
        public override bool HandleNull => true;

        public override IReadOnlyList<string?>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType == JsonTokenType.Null)
            {
                return null;
            }

            if (reader.TokenType != JsonTokenType.StartArray)
            {
                throw WrongType(path, "an array of strings or null", reader.TokenType);
            }

            var list = new List<string?>();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                list.Add(ReadString(ref reader, string.Create(CultureInfo.InvariantCulture, $"{path}[{list.Count}]")));
            }

            return list;
        }

        public override void Write(Utf8JsonWriter writer, IReadOnlyList<string?>? value, JsonSerializerOptions options)
        {
            ArgumentNullException.ThrowIfNull(writer);
            if (value is null)
            {
                writer.WriteNullValue();
                return;
            }

            writer.WriteStartArray();
            foreach (var item in value)
            {
                writer.WriteStringValue(item);
            }

            writer.WriteEndArray();
        }
    }
}
