using System.Globalization;
using System.Net.Http.Headers;

namespace Worker.Host.Gong;

/// <summary>Reads a 429's <c>Retry-After</c>: integer (or decimal) seconds, as Gong sends, or an HTTP date (RFC 9110 §10.2.3).</summary>
internal static class RetryAfter
{
    /// <summary>The instant the header names, relative to <paramref name="now"/> for seconds; null when absent or unreadable.
    /// A negative delay or a date in the past yields <paramref name="now"/>.</summary>
    public static DateTimeOffset? Until(HttpResponseHeaders headers, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(headers);
        if (headers.RetryAfter is { } parsed)
        {
            if (parsed.Delta is { } delta)
            {
                return now + (delta < TimeSpan.Zero ? TimeSpan.Zero : delta);
            }

            if (parsed.Date is { } date)
            {
                return date < now ? now : date;
            }
        }

        return headers.NonValidated.TryGetValues("Retry-After", out var raw) ? Until(raw.FirstOrDefault(), now) : null;
    }

    /// <summary>Parses a raw header value; null when absent or unreadable.</summary>
    public static DateTimeOffset? Until(string? value, DateTimeOffset now)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        var text = value.Trim();
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && double.IsFinite(seconds))
        {
            // Bound before converting, only so that a hostile header cannot overflow TimeSpan or DateTimeOffset; the
            // sender clamps the block to Gong:MaxRetryAfter (and logs it), so the value it saw stays visible.
            return now + TimeSpan.FromSeconds(Math.Clamp(seconds, 0, TimeSpan.FromDays(36_500).TotalSeconds));
        }

        if (DateTimeOffset.TryParseExact(text, "r", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var date)
            || DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out date))
        {
            return date < now ? now : date;
        }

        return null;
    }
}
