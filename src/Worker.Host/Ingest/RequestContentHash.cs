using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Worker.Host.Ingest;

/// <summary>
/// What makes two <see cref="Worker.Contracts.AssignProspectsToFlow"/> messages the same request: a redelivery with the same
/// hash is a duplicate, another hash under the same requestId a conflict (<c>assignment_requests.content_hash</c>).
/// </summary>
internal static class RequestContentHash
{
    /// <summary>
    /// SHA-256 (64 lower-case hex characters) over the content that matters: requestId, flowId, the trimmed lower-cased
    /// owner email and the set of ids (order and duplicates do not change what is asked). Fields are length-prefixed so
    /// no two contents collide.
    /// </summary>
    public static string Of(string requestId, string? flowId, string? email, IReadOnlyList<string?>? ids)
    {
        var builder = new StringBuilder();
        Append(builder, requestId);
        Append(builder, flowId);
        Append(builder, email?.ToLowerInvariant());
        if (ids is null)
        {
            builder.Append("ids:null;");
        }
        else
        {
            var distinct = ids.Distinct(StringComparer.Ordinal).ToList();
            distinct.Sort(StringComparer.Ordinal);
            builder.Append(CultureInfo.InvariantCulture, $"ids:{distinct.Count};");
            foreach (var id in distinct)
            {
                Append(builder, id);
            }
        }

        var bytes = Encoding.UTF8.GetBytes(builder.ToString());
        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }

    private static void Append(StringBuilder builder, string? value)
    {
        if (value is null)
        {
            builder.Append("-1:;");
            return;
        }

        builder.Append(value.Length.ToString(CultureInfo.InvariantCulture)).Append(':').Append(value).Append(';');
    }
}
