using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

/// <summary>
/// The priority lanes of <c>AssignProspectsToFlow.priority</c> (issue 15): wire values, the order a claim takes a
/// group's rows in, and the names used in metrics and <c>status</c>.
/// </summary>
internal static class PriorityLanes
{
    /// <summary>Wire value of <see cref="ProspectPriority.High"/>.</summary>
    public const string High = "high";

    /// <summary>Wire value of <see cref="ProspectPriority.Normal"/> (also what an absent or null priority means).</summary>
    public const string Normal = "normal";

    /// <summary>Wire value of <see cref="ProspectPriority.Bulk"/>.</summary>
    public const string Bulk = "bulk";

    /// <summary>Every lane, most urgent first.</summary>
    public static readonly IReadOnlyList<ProspectPriority> All = [ProspectPriority.High, ProspectPriority.Normal, ProspectPriority.Bulk];

    /// <summary>A claim's usual order: high rows first, the rest of the batch filled with normal and then bulk rows
    /// (a call is never sent half-empty while the group has more pending).</summary>
    public static readonly IReadOnlyList<ProspectPriority> HighFirst = All;

    /// <summary>A bulk turn's order (<c>Dispatch:BulkMinimumShare</c>): bulk rows first, filled with high then normal.</summary>
    public static readonly IReadOnlyList<ProspectPriority> BulkFirst = [ProspectPriority.Bulk, ProspectPriority.High, ProspectPriority.Normal];

    /// <summary>
    /// Reads the wire value: null means <see cref="ProspectPriority.Normal"/>; <c>high</c>, <c>normal</c> and <c>bulk</c>
    /// (exact, lower-case, as in <c>contracts/AssignProspectsToFlow.schema.json</c>) their lane. Anything else adds an
    /// error naming the field to <paramref name="errors"/> and returns null.
    /// </summary>
    public static ProspectPriority? Parse(string? wire, List<string> errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        switch (wire)
        {
            case null or Normal:
                return ProspectPriority.Normal;
            case High:
                return ProspectPriority.High;
            case Bulk:
                return ProspectPriority.Bulk;
            default:
                errors.Add($"priority: {Operations.UserText.Describe(wire)} is not a priority; must be \"{High}\", \"{Normal}\" or \"{Bulk}\" (or absent, which means \"{Normal}\").");
                return null;
        }
    }

    /// <summary>The wire value (also the metric attribute <c>priority</c>) of a lane; null for null.</summary>
    public static string? ToWire(ProspectPriority? priority) => priority switch
    {
        ProspectPriority.High => High,
        ProspectPriority.Normal => Normal,
        ProspectPriority.Bulk => Bulk,
        _ => null,
    };

    /// <summary>The lane of a batch: its most urgent row's.</summary>
    public static ProspectPriority Best(ProspectPriority a, ProspectPriority b) => a < b ? a : b;
}
