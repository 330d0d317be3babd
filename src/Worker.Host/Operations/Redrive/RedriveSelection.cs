namespace Worker.Host.Operations.Redrive;

/// <summary>
/// Which final prospect rows a re-drive sends again. Failed rows always qualify (narrowed by <see cref="FailedErrorCodes"/>);
/// NotAssigned rows only with one of <see cref="NotAssignedErrorCodes"/> (Gong's own errorCode, e.g. <c>InvalidState</c>).
/// Rejected and Assigned rows never do, and neither does a row already re-driven.
/// </summary>
/// <param name="RequestId">Only rows of this request (the publisher's requestId), or null for all.</param>
/// <param name="FlowId">Only rows for this Gong flow id, or null for all.</param>
/// <param name="FailedErrorCodes">Failed rows with one of these worker error codes (e.g. <c>RetriesExhausted</c>); empty: every Failed row.</param>
/// <param name="NotAssignedErrorCodes">NotAssigned rows with one of these Gong error codes; empty: no NotAssigned row.</param>
/// <param name="CompletedFrom">Rows whose outcome was recorded at or after this instant (UTC), or null.</param>
/// <param name="CompletedBefore">Rows whose outcome was recorded before this instant (UTC), or null.</param>
public sealed record RedriveSelection(
    string? RequestId,
    string? FlowId,
    IReadOnlyList<string> FailedErrorCodes,
    IReadOnlyList<string> NotAssignedErrorCodes,
    DateTimeOffset? CompletedFrom,
    DateTimeOffset? CompletedBefore);

/// <summary>Rows a selection finds, grouped for the dry-run listing.</summary>
/// <param name="RequestId">The request the rows belong to.</param>
/// <param name="FlowId">Its Gong flow id.</param>
/// <param name="Status">Failed or NotAssigned.</param>
/// <param name="ErrorCode">The rows' error code (null when none was recorded).</param>
/// <param name="Prospects">Number of rows.</param>
public sealed record RedriveCount(string RequestId, string FlowId, string Status, string? ErrorCode, int Prospects);

/// <summary>One re-drive request stored (or found already stored).</summary>
/// <param name="RequestId">The derived requestId (<c>redrive:&lt;generation&gt;:&lt;hash&gt;</c>).</param>
/// <param name="RedriveOfRequestId">The request whose rows it sends again.</param>
/// <param name="Prospects">Prospect ids it carries.</param>
/// <param name="AlreadyStored">True when a previous, interrupted run had stored it already (nothing added now).</param>
public sealed record RedriveRequest(string RequestId, string RedriveOfRequestId, int Prospects, bool AlreadyStored);
