using System.Text.Json;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Worker.Host.Operations;

/// <summary>
/// Writes a health report as JSON: <c>{"status":"Degraded","totalDurationMs":3.1,"checks":[{"name":"gong",
/// "status":"Degraded","description":"…","durationMs":0.1,"error":null,"data":{…}}]}</c>.
/// Errors carry the exception type and message only (never a stack or a connection string).
/// </summary>
internal static class HealthResponseWriter
{
    private static readonly JsonSerializerOptions DataJson = new(JsonSerializerDefaults.Web);

    public static async Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        await using var writer = new Utf8JsonWriter(context.Response.Body);
        writer.WriteStartObject();
        writer.WriteString("status", report.Status.ToString());
        writer.WriteNumber("totalDurationMs", Math.Round(report.TotalDuration.TotalMilliseconds, 1));
        writer.WriteStartArray("checks");
        foreach (var (name, entry) in report.Entries)
        {
            writer.WriteStartObject();
            writer.WriteString("name", name);
            writer.WriteString("status", entry.Status.ToString());
            writer.WriteString("description", entry.Description);
            writer.WriteNumber("durationMs", Math.Round(entry.Duration.TotalMilliseconds, 1));
            if (entry.Exception is { } exception)
            {
                writer.WriteString("error", $"{exception.GetType().Name}: {exception.Message}");
            }

            if (entry.Data.Count > 0)
            {
                writer.WriteStartObject("data");
                foreach (var (key, value) in entry.Data)
                {
                    writer.WritePropertyName(key);
                    WriteValue(writer, value);
                }

                writer.WriteEndObject();
            }

            if (entry.Tags.Any())
            {
                writer.WriteStartArray("tags");
                foreach (var tag in entry.Tags)
                {
                    writer.WriteStringValue(tag);
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }

    private static void WriteValue(Utf8JsonWriter writer, object? value)
    {
        try
        {
            var json = JsonSerializer.SerializeToElement(value, value?.GetType() ?? typeof(object), DataJson);
            json.WriteTo(writer);
        }
        catch (NotSupportedException)
        {
            writer.WriteStringValue(value?.ToString());
        }
        catch (JsonException)
        {
            writer.WriteStringValue(value?.ToString());
        }
    }
}
