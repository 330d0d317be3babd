using System.Net.Mail;
using Worker.Contracts;
using Worker.Host.Dispatch;
using Worker.Host.Operations;
using Worker.Persistence.Entities;

namespace Worker.Host.Ingest;

/// <summary>A CRM prospect id refused on its own, in the form it is stored and reported under.</summary>
/// <param name="CrmProspectId">The id as received; NUL and unpaired surrogates replaced by U+FFFD and cut (between characters) to 500 UTF-16 units so Postgres can hold it.</param>
/// <param name="Reason">What is wrong with it (value shape and limit).</param>
internal sealed record RejectedProspectId(string CrmProspectId, string Reason);

/// <summary>An <see cref="AssignProspectsToFlow"/> after validation: what ingest stores.</summary>
/// <param name="RequestId">The publisher's requestId, as received (1–256 characters).</param>
/// <param name="FlowId">The flowId as received, made storable (empty when missing).</param>
/// <param name="OwnerEmail">The owner email trimmed, original case, made storable.</param>
/// <param name="OwnerEmailNormalized">The owner email trimmed and lower-cased (the grouping key).</param>
/// <param name="ValidIds">Unique valid ids, in first-seen order.</param>
/// <param name="RejectedIds">Unique invalid ids, each with its reason.</param>
/// <param name="Errors">Request-level problems; non-empty means the whole request is Rejected.</param>
/// <param name="ContentHash">SHA-256 (64 lower-case hex characters) of the canonical content.</param>
internal sealed record ValidatedRequest(
    string RequestId,
    string FlowId,
    string OwnerEmail,
    string OwnerEmailNormalized,
    IReadOnlyList<string> ValidIds,
    IReadOnlyList<RejectedProspectId> RejectedIds,
    IReadOnlyList<string> Errors,
    string ContentHash)
{
    /// <summary>The request as a whole is invalid: every id is Rejected and nothing is sent.</summary>
    public bool IsRejected => Errors.Count > 0;

    /// <summary>Nothing is left to send (rejected request, or no valid id): the request completes at once.</summary>
    public bool CompletesAtOnce => IsRejected || ValidIds.Count == 0;

    /// <summary>Unique ids stored for the request (valid and rejected).</summary>
    public int ProspectCount => ValidIds.Count + RejectedIds.Count;

    /// <summary>The priority lane (Normal when absent); null when the value was unknown (the request is Rejected).
    /// Not part of <see cref="ContentHash"/>: a request's identity ignores its priority.</summary>
    public ProspectPriority? Priority { get; init; } = ProspectPriority.Normal;
}

/// <summary>
/// Checks an <see cref="AssignProspectsToFlow"/> against the wire contract (docs/DESIGN.md, "Wire contract")
/// without throwing for invalid content: problems become a Rejected request or Rejected ids.
/// </summary>
internal static class AssignmentValidator
{
    /// <summary>Wire limit of requestId (characters).</summary>
    public const int MaxRequestIdLength = 128;

    /// <summary>Longest requestId that can still be stored and answered (the column holds 256).</summary>
    public const int MaxStorableRequestIdLength = 256;

    /// <summary>Wire limit of one CRM prospect id (characters).</summary>
    public const int MaxProspectIdLength = 255;

    /// <summary>Longest flowId accepted (digits); Gong's ids have 19.</summary>
    public const int MaxFlowIdLength = 64;

    /// <summary>Longest owner email accepted (RFC 5321 path limit).</summary>
    public const int MaxEmailLength = 254;

    // Caps of stored values (UTF-16 units), below their columns (crm_prospect_id and owner_email 512, flow_id 256) and
    // above every valid value, so only an invalid value is ever cut.
    private const int MaxStoredIdLength = 500;
    private const int MaxStoredEmailLength = 500;
    private const int MaxStoredFieldLength = 250;

    /// <summary>Validates <paramref name="message"/>.</summary>
    /// <param name="message">The command as deserialized.</param>
    /// <param name="maxProspectsPerRequest">Most ids per request (Ingest:MaxProspectsPerRequest).</param>
    /// <exception cref="UnusableRequestIdException">No requestId that can be stored and answered to.</exception>
    public static ValidatedRequest Validate(AssignProspectsToFlow message, int maxProspectsPerRequest)
    {
        ArgumentNullException.ThrowIfNull(message);
        var requestId = message.RequestId;
        if (string.IsNullOrEmpty(requestId))
        {
            throw new UnusableRequestIdException(
                $"requestId: {(requestId is null ? "missing or null" : "empty")}; required: 1 to {MaxRequestIdLength} printable characters. The message was not stored.");
        }

        if (requestId.Length > MaxStorableRequestIdLength || requestId.Contains('\0', StringComparison.Ordinal))
        {
            throw new UnusableRequestIdException(
                $"requestId: {Describe(requestId)}; required: 1 to {MaxRequestIdLength} printable characters. The message was not stored.");
        }

        // The event must carry the requestId exactly as sent, and text with an unpaired surrogate cannot be stored
        // (Postgres takes UTF-8) nor published unchanged (JSON writers replace it): there is nothing to answer to.
        if (LoneSurrogateProblem(requestId) is { } lone)
        {
            throw new UnusableRequestIdException(
                $"requestId: {lone}; required: 1 to {MaxRequestIdLength} printable characters. The message was not stored.");
        }

        var errors = new List<string>();
        if (requestId.Length > MaxRequestIdLength)
        {
            errors.Add($"requestId: {requestId.Length} characters; the limit is {MaxRequestIdLength}.");
        }
        else if (requestId.Any(char.IsControl) || string.IsNullOrWhiteSpace(requestId))
        {
            errors.Add($"requestId: {Describe(requestId)}; must be 1 to {MaxRequestIdLength} printable characters.");
        }

        var flowId = message.FlowId;
        if (flowId is null)
        {
            errors.Add("flowId: missing or null; required: the Gong flow id as a string of digits.");
        }
        else if (flowId.Length == 0)
        {
            errors.Add("flowId: empty; required: the Gong flow id as a string of digits.");
        }
        else if (flowId.Length > MaxFlowIdLength || !flowId.All(char.IsAsciiDigit))
        {
            errors.Add($"flowId: {Describe(flowId)}; must be 1 to {MaxFlowIdLength} digits (0-9) only.");
        }

        var email = message.FlowInstanceOwnerEmail?.Trim();
        if (email is null)
        {
            errors.Add("flowInstanceOwnerEmail: missing or null; required: the Gong user's email address.");
        }
        else if (email.Length == 0)
        {
            errors.Add("flowInstanceOwnerEmail: empty or whitespace only; required: the Gong user's email address.");
        }
        else if (LoneSurrogateProblem(email) is { } emailProblem)
        {
            errors.Add($"flowInstanceOwnerEmail: {emailProblem}; required: the Gong user's email address.");
        }
        else if (!IsValidEmail(email))
        {
            errors.Add($"flowInstanceOwnerEmail: {Describe(email)} is not a valid email address (local@domain, at most {MaxEmailLength} characters).");
        }

        var ids = message.CrmProspectIds;
        if (ids is null)
        {
            errors.Add($"crmProspectIds: missing or null; required: an array of 1 to {maxProspectsPerRequest} CRM prospect ids.");
        }
        else if (ids.Count == 0)
        {
            errors.Add($"crmProspectIds: empty array; required: 1 to {maxProspectsPerRequest} CRM prospect ids.");
        }
        else if (ids.Count > maxProspectsPerRequest)
        {
            errors.Add($"crmProspectIds: {ids.Count} ids; the limit is {maxProspectsPerRequest} per request (Ingest:MaxProspectsPerRequest).");
        }

        var priority = PriorityLanes.Parse(message.Priority, errors);

        var valid = new List<string>();
        var rejected = new List<RejectedProspectId>();
        var seen = new HashSet<string>(StringComparer.Ordinal);

        // Over the limit, the ids are not looked at one by one: a request of 500,000 ids would otherwise become
        // 500,000 Rejected rows and a result event larger than RabbitMQ accepts. The request alone is Rejected,
        // its event carries the error and no per-id outcomes.
        if (ids is not null && ids.Count <= maxProspectsPerRequest)
        {
            // Valid ids first: a rejected id is stored scrubbed and cut, and that form must never take the place of a
            // valid id with the same text (the valid one would silently get no outcome).
            var problems = new string?[ids.Count];
            for (var i = 0; i < ids.Count; i++)
            {
                problems[i] = ProspectIdProblem(ids[i]);
                if (problems[i] is null && seen.Add(ids[i]!))
                {
                    valid.Add(ids[i]!);
                }
            }

            for (var i = 0; i < ids.Count; i++)
            {
                if (problems[i] is { } reason)
                {
                    var stored = Storable(ids[i] ?? string.Empty, MaxStoredIdLength);
                    if (seen.Add(stored))
                    {
                        rejected.Add(new RejectedProspectId(stored, $"crmProspectIds[{i}]: {reason}"));
                    }
                }
            }
        }

        var ownerEmail = Storable(email ?? string.Empty, MaxStoredEmailLength);
        return new ValidatedRequest(
            requestId,
            Storable(flowId ?? string.Empty, MaxStoredFieldLength),
            ownerEmail,
            ownerEmail.ToLowerInvariant(),
            valid,
            rejected,
            errors,
            RequestContentHash.Of(requestId, flowId, email, ids)) { Priority = priority };
    }

    private static string? ProspectIdProblem(string? id)
    {
        if (id is null)
        {
            return $"null; each id must be a string of 1 to {MaxProspectIdLength} characters.";
        }

        if (id.Length == 0)
        {
            return $"empty; each id must be 1 to {MaxProspectIdLength} characters.";
        }

        if (id.Length > MaxProspectIdLength)
        {
            return $"{id.Length} characters; the limit is {MaxProspectIdLength}.";
        }

        var control = id.FirstOrDefault(char.IsControl);
        if (control != default || id.Contains('\0', StringComparison.Ordinal))
        {
            return $"contains the control character U+{(int)control:X4}; ids must not contain control characters.";
        }

        if (LoneSurrogateProblem(id) is { } lone)
        {
            return $"{lone}; ids must be valid Unicode text.";
        }

        if (string.IsNullOrWhiteSpace(id))
        {
            return $"whitespace only; each id must be 1 to {MaxProspectIdLength} characters, not only whitespace.";
        }

        return null;
    }

    private static bool IsValidEmail(string email)
    {
        if (email.Length > MaxEmailLength || email.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            return false;
        }

        var at = email.LastIndexOf('@');
        if (at <= 0 || at == email.Length - 1 || email.IndexOf('@', StringComparison.Ordinal) != at)
        {
            return false;
        }

        var domain = email[(at + 1)..];
        if (!domain.Contains('.', StringComparison.Ordinal) || domain.StartsWith('.') || domain.EndsWith('.'))
        {
            return false;
        }

        // MailAddress also accepts display names ("Name <a@b.c>"): require it to read back the same address.
        return MailAddress.TryCreate(email, out var address) && string.Equals(address.Address, email, StringComparison.Ordinal);
    }

    /// <summary>A short description of a bad value for a reason text: its length and, when short, the value itself.</summary>
    private static string Describe(string value) => UserText.Describe(value);

    /// <summary>The reason text for an unpaired surrogate in <paramref name="value"/>, or null when it is well-formed.</summary>
    private static string? LoneSurrogateProblem(string value)
    {
        var index = UserText.LoneSurrogateIndex(value);
        return index < 0
            ? null
            : $"contains an unpaired surrogate U+{(int)value[index]:X4} at index {index} (UTF-16), which is not valid Unicode text";
    }

    /// <summary>Postgres text holds no NUL nor unpaired surrogate; cap the length (on a character boundary) so an oversized invalid value still fits its column.</summary>
    private static string Storable(string value, int maxLength) => UserText.Truncate(value, maxLength);
}
