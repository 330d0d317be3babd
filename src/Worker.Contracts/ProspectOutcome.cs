namespace Worker.Contracts;

/// <summary>The final outcome of one CRM prospect within a <see cref="FlowAssignmentCompleted"/>.</summary>
/// <param name="CrmProspectId">The CRM id as received.</param>
/// <param name="Status">Assigned, NotAssigned (Gong declined), Failed (no trusted answer) or Rejected (invalid input, never sent).</param>
/// <param name="FlowInstanceId">Gong flow instance id (~19-digit string) when Assigned.</param>
/// <param name="FlowInstanceStatus">Gong's flow instance status when Assigned (e.g. Pending, Running; opaque string).</param>
/// <param name="ErrorCode">Gong's errorCode (InvalidArgument, InvalidState, UnexpectedError) for NotAssigned; the worker's code
/// (FlowNotFound, Forbidden, BadRequest, MissingFromResponse, RetriesExhausted, InvalidProspectId) for Failed and Rejected.</param>
/// <param name="ErrorMessage">Gong's message or the worker's reason, naming the field and the limit for Rejected.</param>
/// <param name="GongRequestId">Gong's requestId of the call that decided this outcome (for Gong support).</param>
public sealed record ProspectOutcome(
    string CrmProspectId,
    ProspectStatus Status,
    string? FlowInstanceId = null,
    string? FlowInstanceStatus = null,
    string? ErrorCode = null,
    string? ErrorMessage = null,
    string? GongRequestId = null);
