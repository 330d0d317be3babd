using Worker.Contracts;
using Worker.Host.Relay;
using Worker.Persistence.Entities;

namespace Worker.UnitTests.Relay;

public sealed class FlowAssignmentCompletedFactoryTests
{
    private static readonly DateTimeOffset Received = new(2026, 11, 30, 9, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Completed = Received.AddMinutes(3);

    [Fact]
    public void A_request_rejected_at_ingest_is_Rejected_at_one_instant_with_one_outcome_per_id_in_order()
    {
        var completed = FlowAssignmentCompletedFactory.RejectedAtIngest(
            "crm-sync-1", "123", "Owner@Example.com", Received,
            [new RejectedOutcome("a", "RequestRejected", "whole request"), new RejectedOutcome("b", "InvalidProspectId", "crmProspectIds[1]: empty")],
            ["flowId: empty"],
            "bulk");

        Assert.Equal("bulk", completed.Priority);
        Assert.Equal(("crm-sync-1", "123", "Owner@Example.com"), (completed.RequestId, completed.FlowId, completed.FlowInstanceOwnerEmail));
        Assert.Equal(RequestStatus.Rejected, completed.Status);
        Assert.Equal((Received, Received), (completed.ReceivedAt, completed.CompletedAt));
        Assert.Equal(
            [new ProspectOutcome("a", ProspectStatus.Rejected, ErrorCode: "RequestRejected", ErrorMessage: "whole request"),
             new ProspectOutcome("b", ProspectStatus.Rejected, ErrorCode: "InvalidProspectId", ErrorMessage: "crmProspectIds[1]: empty")],
            completed.Outcomes);
        Assert.Equal(["flowId: empty"], completed.Errors!);
    }

    [Fact]
    public void A_stored_request_maps_every_row_in_order_with_Gong_fields_and_no_errors()
    {
        var request = Request(RequestStatus.PartiallySucceeded, Completed, rejectionReason: null,
            Row("p1", ProspectAssignmentStatus.Assigned, flowInstanceId: "1695493301223590793", flowInstanceStatus: "Pending", gongRequestId: "req-1"),
            Row("p2", ProspectAssignmentStatus.NotAssigned, errorCode: "InvalidState", errorMessage: "already in flow", gongRequestId: "req-1"),
            Row("p3", ProspectAssignmentStatus.Failed, errorCode: "RetriesExhausted", errorMessage: "no answer"),
            Row("p4", ProspectAssignmentStatus.Rejected, errorCode: "InvalidProspectId", errorMessage: "too long"));

        var completed = FlowAssignmentCompletedFactory.FromStored(request);

        Assert.Equal(("crm-sync-2", "123", "Owner@Example.com"), (completed.RequestId, completed.FlowId, completed.FlowInstanceOwnerEmail));
        Assert.Equal(RequestStatus.PartiallySucceeded, completed.Status);
        Assert.Equal((Received, Completed), (completed.ReceivedAt, completed.CompletedAt));
        Assert.Equal(
            [new ProspectOutcome("p1", ProspectStatus.Assigned, "1695493301223590793", "Pending", GongRequestId: "req-1"),
             new ProspectOutcome("p2", ProspectStatus.NotAssigned, ErrorCode: "InvalidState", ErrorMessage: "already in flow", GongRequestId: "req-1"),
             new ProspectOutcome("p3", ProspectStatus.Failed, ErrorCode: "RetriesExhausted", ErrorMessage: "no answer"),
             new ProspectOutcome("p4", ProspectStatus.Rejected, ErrorCode: "InvalidProspectId", ErrorMessage: "too long")],
            completed.Outcomes);
        Assert.Empty(completed.Errors!);
    }

    [Theory]
    [InlineData(ProspectAssignmentStatus.Pending)]
    [InlineData(ProspectAssignmentStatus.InFlight)]
    public void A_row_without_a_final_status_reads_as_Failed(ProspectAssignmentStatus status)
    {
        var completed = FlowAssignmentCompletedFactory.FromStored(Request(RequestStatus.Failed, Completed, null, Row("p1", status)));

        Assert.Equal(ProspectStatus.Failed, Assert.Single(completed.Outcomes).Status);
    }

    [Fact]
    public void A_request_without_status_or_completion_time_reads_as_Failed_completed_when_received()
    {
        var completed = FlowAssignmentCompletedFactory.FromStored(Request(null, null, null));

        Assert.Equal(RequestStatus.Failed, completed.Status);
        Assert.Equal(Received, completed.CompletedAt);
        Assert.Empty(completed.Outcomes);
    }

    [Theory]
    [InlineData(ProspectPriority.High, "high")]
    [InlineData(ProspectPriority.Normal, "normal")]
    [InlineData(ProspectPriority.Bulk, "bulk")]
    public void A_stored_request_echoes_its_priority(ProspectPriority priority, string wire)
    {
        var request = Request(RequestStatus.Succeeded, Completed, null);
        request.Priority = priority;

        Assert.Equal(wire, FlowAssignmentCompletedFactory.FromStored(request).Priority);
    }

    [Fact]
    public void The_rejection_reason_becomes_one_error_per_line()
    {
        var completed = FlowAssignmentCompletedFactory.FromStored(Request(RequestStatus.Rejected, Received, "flowId: empty\n\nrequestId: 300 characters"));

        Assert.Equal(["flowId: empty", "requestId: 300 characters"], completed.Errors!);
    }

    [Fact]
    public void The_event_survives_the_outbox_unchanged()
    {
        var completed = FlowAssignmentCompletedFactory.FromStored(Request(RequestStatus.Succeeded, Completed, null,
            Row("p1", ProspectAssignmentStatus.Assigned, flowInstanceId: "1695493301223590793", flowInstanceStatus: "Pending", gongRequestId: "req-1")));

        var read = OutboxEvents.ReadCompleted(OutboxEvents.ForCompleted(completed, 7, Completed));

        Assert.Equal(completed with { Outcomes = read.Outcomes, Errors = read.Errors }, read);
        Assert.Equal(completed.Outcomes, read.Outcomes);
        Assert.Equal(completed.Errors!, read.Errors!);
    }

    private static AssignmentRequest Request(RequestStatus? status, DateTimeOffset? completedAt, string? rejectionReason, params ProspectAssignment[] rows) => new()
    {
        Id = 7,
        RequestId = "crm-sync-2",
        FlowId = "123",
        OwnerEmail = "Owner@Example.com",
        OwnerEmailNormalized = "owner@example.com",
        Status = status,
        ContentHash = new string('0', 64),
        RejectionReason = rejectionReason,
        ReceivedAt = Received,
        CompletedAt = completedAt,
        Prospects = [.. rows],
    };

    private static ProspectAssignment Row(
        string crmProspectId, ProspectAssignmentStatus status, string? flowInstanceId = null, string? flowInstanceStatus = null,
        string? errorCode = null, string? errorMessage = null, string? gongRequestId = null) => new()
    {
        CrmProspectId = crmProspectId,
        FlowId = "123",
        OwnerEmail = "owner@example.com",
        Status = status,
        FlowInstanceId = flowInstanceId,
        FlowInstanceStatus = flowInstanceStatus,
        ErrorCode = errorCode,
        ErrorMessage = errorMessage,
        GongRequestId = gongRequestId,
    };
}
