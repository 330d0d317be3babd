using Worker.Contracts;
using Worker.Persistence.Entities;

namespace Worker.Host.Dispatch;

/// <summary>
/// Status values as SQL literals (quoted, as stored: the enum member's name), generated from the enums with
/// <c>nameof</c>: SQL text interpolates these instead of writing <c>'InFlight'</c> by hand, so renaming an enum member
/// changes the SQL with it (or fails the build).
/// </summary>
/// <remarks>
/// Constants in the SQL text rather than bound parameters on purpose: the partial index
/// <c>ix_prospect_assignments_pending_by_group</c> (<c>WHERE status = 'Pending'</c>) serves only a plan that sees the
/// value, and a prepared statement's generic plan would not. SQL in migrations and views keeps its literals.
/// </remarks>
internal static class StatusSql
{
    /// <summary><see cref="ProspectAssignmentStatus"/> members (<c>prospect_assignments.status</c>) as SQL literals.</summary>
    public const string
        Pending = $"'{nameof(ProspectAssignmentStatus.Pending)}'",
        InFlight = $"'{nameof(ProspectAssignmentStatus.InFlight)}'",
        Assigned = $"'{nameof(ProspectAssignmentStatus.Assigned)}'",
        NotAssigned = $"'{nameof(ProspectAssignmentStatus.NotAssigned)}'",
        Failed = $"'{nameof(ProspectAssignmentStatus.Failed)}'",
        Rejected = $"'{nameof(ProspectAssignmentStatus.Rejected)}'";

    /// <summary><see cref="ProspectPriority"/> members (<c>priority</c> columns) as SQL literals.</summary>
    public const string
        High = $"'{nameof(ProspectPriority.High)}'",
        Normal = $"'{nameof(ProspectPriority.Normal)}'",
        Bulk = $"'{nameof(ProspectPriority.Bulk)}'";

    /// <summary><see cref="RequestStatus"/> members (<c>assignment_requests.status</c>) as SQL literals, prefixed
    /// <c>Request</c>.</summary>
    public const string
        RequestSucceeded = $"'{nameof(RequestStatus.Succeeded)}'",
        RequestPartiallySucceeded = $"'{nameof(RequestStatus.PartiallySucceeded)}'",
        RequestFailed = $"'{nameof(RequestStatus.Failed)}'";
}
