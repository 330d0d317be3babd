using System.Globalization;
using System.Text;

namespace Worker.Host.Operations;

/// <summary>
/// The one place where text from users (requestIds, flowIds, owner emails, CRM ids, Gong's error messages) is
/// shortened, masked, quoted or made storable. Cuts fall on text-element boundaries (extended grapheme clusters,
/// <see cref="StringInfo"/>), so a surrogate pair, an emoji sequence or a letter with its combining marks is never
/// split; lengths are counted in UTF-16 code units, as the wire contract counts them.
/// </summary>
/// <remarks>
/// Why it matters: Npgsql encodes text as strict UTF-8 and refuses a lone surrogate (EncoderFallbackException), so a
/// value cut inside a surrogate pair fails the whole transaction it is written in. JSON writers replace it with
/// U+FFFD, so a cut value would also not read back as written.
/// </remarks>
public static class UserText
{
    /// <summary>The character put where text was cut: U+2026 HORIZONTAL ELLIPSIS (one UTF-16 unit).</summary>
    public const string Ellipsis = "…";

    /// <summary>True when <paramref name="value"/> holds no unpaired surrogate (it is valid UTF-16, so it encodes to UTF-8).</summary>
    public static bool IsWellFormed(ReadOnlySpan<char> value) => LoneSurrogateIndex(value) < 0;

    /// <summary>The index (UTF-16 units) of the first unpaired surrogate in <paramref name="value"/>, or -1 when there is none.</summary>
    public static int LoneSurrogateIndex(ReadOnlySpan<char> value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (!char.IsSurrogate(c))
            {
                continue;
            }

            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
                continue;
            }

            return i;
        }

        return -1;
    }

    /// <summary>
    /// <paramref name="value"/> in a form every store and wire format holds: each unpaired surrogate and each NUL
    /// (which Postgres text cannot hold) replaced by U+FFFD; the length in UTF-16 units does not change.
    /// </summary>
    public static string Scrub(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (IsWellFormed(value) && !value.Contains('\0', StringComparison.Ordinal))
        {
            return value;
        }

        var builder = new StringBuilder(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                builder.Append(c).Append(value[i + 1]);
                i++;
            }
            else
            {
                builder.Append(char.IsSurrogate(c) || c == '\0' ? '\uFFFD' : c);
            }
        }

        return builder.ToString();
    }

    /// <summary>
    /// The longest prefix of <paramref name="value"/> of at most <paramref name="maxLength"/> UTF-16 units that ends on
    /// a text-element boundary. When even the first text element is longer (e.g. a letter with hundreds of combining
    /// marks), the cut falls on the last Unicode scalar boundary instead, so it still never splits a surrogate pair.
    /// </summary>
    /// <param name="value">Well-formed text (see <see cref="Scrub"/>).</param>
    /// <param name="maxLength">Most UTF-16 units kept, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxLength"/> is negative.</exception>
    public static string Prefix(string value, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentOutOfRangeException.ThrowIfNegative(maxLength);
        if (value.Length <= maxLength)
        {
            return value;
        }

        var end = 0;
        while (end < value.Length)
        {
            var next = StringInfo.GetNextTextElementLength(value.AsSpan(end));
            if (end + next > maxLength)
            {
                break;
            }

            end += next;
        }

        if (end == 0)
        {
            end = maxLength > 0 && char.IsLowSurrogate(value[maxLength]) ? maxLength - 1 : maxLength;
        }

        return value[..end];
    }

    /// <summary>
    /// <paramref name="value"/> scrubbed (<see cref="Scrub"/>) and, when longer than <paramref name="maxLength"/>
    /// UTF-16 units, cut on a text-element boundary with <see cref="Ellipsis"/> appended; the result is at most
    /// <paramref name="maxLength"/> units long. Used for values stored in bounded columns and for long texts.
    /// </summary>
    /// <param name="value">Any text, also malformed UTF-16.</param>
    /// <param name="maxLength">Most UTF-16 units of the result, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxLength"/> is less than 1.</exception>
    public static string Truncate(string value, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        var scrubbed = Scrub(value);
        return scrubbed.Length <= maxLength ? scrubbed : Prefix(scrubbed, maxLength - Ellipsis.Length) + Ellipsis;
    }

    /// <summary>The first text element of <paramref name="value"/> (e.g. a whole emoji, or a letter with its accents), scrubbed; empty for empty input.</summary>
    public static string FirstTextElement(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var scrubbed = Scrub(value);
        return scrubbed.Length == 0 ? string.Empty : scrubbed[..StringInfo.GetNextTextElementLength(scrubbed)];
    }

    /// <summary>
    /// A bad value described for an error message or a log line: its length in UTF-16 units and, when it holds no
    /// control character, the value itself quoted (scrubbed, and cut to <paramref name="quoteLength"/> units on a
    /// text-element boundary when longer than <paramref name="wholeUpTo"/>). Never holds a lone surrogate or NUL.
    /// </summary>
    /// <param name="value">The value as received.</param>
    /// <param name="wholeUpTo">Values up to this many UTF-16 units are quoted whole (default 64).</param>
    /// <param name="quoteLength">Longer values are quoted up to this many units (default 32).</param>
    public static string Describe(string value, int wholeUpTo = 64, int quoteLength = 32)
    {
        ArgumentNullException.ThrowIfNull(value);
        var length = value.Length.ToString(CultureInfo.InvariantCulture);
        var control = value.AsSpan().IndexOfAnyInRange('\0', '\u001F');
        var del = value.AsSpan().IndexOfAnyInRange('\u007F', '\u009F');
        var first = control < 0 ? del : del < 0 ? control : Math.Min(control, del);
        if (first >= 0)
        {
            return $"{length} characters including the control character U+{(int)value[first]:X4}";
        }

        var scrubbed = Scrub(value);
        return value.Length <= wholeUpTo
            ? $"\"{scrubbed}\" ({length} characters)"
            : $"{length} characters starting \"{Prefix(scrubbed, quoteLength)}\"";
    }
}
