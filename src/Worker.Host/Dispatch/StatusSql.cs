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
    /// <summary><see cref="ProspectAssignmentStatus.Pending"/> as a SQL literal.</summary>
    public const string Pending = $"'{nameof(ProspectAssignmentStatus.Pending)}'";

    /// <summary><see cref="ProspectAssignmentStatus.InFlight"/> as a SQL literal.</summary>
    public const string InFlight = $"'{nameof(ProspectAssignmentStatus.InFlight)}'";

    /// <summary><see cref="ProspectAssignmentStatus.Assigned"/> as a SQL literal.</summary>
    public const string Assigned = $"'{nameof(ProspectAssignmentStatus.Assigned)}'";

    /// <summary><see cref="ProspectAssignmentStatus.NotAssigned"/> as a SQL literal.</summary>
    public const string NotAssigned = $"'{nameof(ProspectAssignmentStatus.NotAssigned)}'";

    /// <summary><see cref="ProspectAssignmentStatus.Failed"/> as a SQL literal.</summary>
    public const string Failed = $"'{nameof(ProspectAssignmentStatus.Failed)}'";

    /// <summary><see cref="ProspectAssignmentStatus.Rejected"/> as a SQL literal.</summary>
    public const string Rejected = $"'{nameof(ProspectAssignmentStatus.Rejected)}'";

    /// <summary><see cref="ProspectPriority.High"/> (<c>priority</c> column) as a SQL literal.</summary>
    public const string High = $"'{nameof(ProspectPriority.High)}'";

    /// <summary><see cref="ProspectPriority.Normal"/> (<c>priority</c> column) as a SQL literal.</summary>
    public const string Normal = $"'{nameof(ProspectPriority.Normal)}'";

    /// <summary><see cref="ProspectPriority.Bulk"/> (<c>priority</c> column) as a SQL literal.</summary>
    public const string Bulk = $"'{nameof(ProspectPriority.Bulk)}'";

    /// <summary><see cref="RequestStatus.Succeeded"/> (<c>assignment_requests.status</c>) as a SQL literal.</summary>
    public const string RequestSucceeded = $"'{nameof(RequestStatus.Succeeded)}'";

    /// <summary><see cref="RequestStatus.PartiallySucceeded"/> (<c>assignment_requests.status</c>) as a SQL literal.</summary>
    public const string RequestPartiallySucceeded = $"'{nameof(RequestStatus.PartiallySucceeded)}'";

    /// <summary><see cref="RequestStatus.Failed"/> (<c>assignment_requests.status</c>) as a SQL literal.</summary>
    public const string RequestFailed = $"'{nameof(RequestStatus.Failed)}'";
}
