using Worker.Contracts;
using Worker.Host.Ingest;

namespace Worker.UnitTests.Ingest;

public sealed class IngestRejectionsTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 30, 9, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_request_rejected_as_a_whole_stores_and_reports_its_valid_ids_then_its_invalid_ids()
    {
        var request = AssignmentValidator.Validate(new AssignProspectsToFlow("r-1", "not-digits", "owner@example.com", ["a", "", "b"]), 10_000);

        var completed = IngestRejections.CompletedEvent(request, Now);

        Assert.Equal(["a", "b", ""], completed.Outcomes.Select(o => o.CrmProspectId));
        Assert.Equal(["RequestRejected", "RequestRejected", "InvalidProspectId"], completed.Outcomes.Select(o => o.ErrorCode));
        Assert.All(completed.Outcomes, o => Assert.Equal(ProspectStatus.Rejected, o.Status));
        Assert.Equal(IngestRejections.Outcomes(request).Select(r => (r.CrmProspectId, r.ErrorCode, r.ErrorMessage)),
            completed.Outcomes.Select(o => (o.CrmProspectId, o.ErrorCode!, o.ErrorMessage!)));
        Assert.Equal(IngestRejections.RejectionReason(request)!.Split('\n'), completed.Errors!);
        Assert.Equal((RequestStatus.Rejected, Now, Now), (completed.Status, completed.ReceivedAt, completed.CompletedAt));
    }

    [Fact]
    public void A_request_without_a_valid_id_reports_the_reason_it_stores()
    {
        var request = AssignmentValidator.Validate(new AssignProspectsToFlow("r-2", "123", "owner@example.com", ["", " "]), 10_000);

        var completed = IngestRejections.CompletedEvent(request, Now);

        Assert.Equal([IngestRejections.RejectionReason(request)!], completed.Errors!);
        Assert.Contains("none of the 2 unique ids is valid", completed.Errors![0], StringComparison.Ordinal);
        Assert.Equal(["InvalidProspectId", "InvalidProspectId"], completed.Outcomes.Select(o => o.ErrorCode));
    }

    [Fact]
    public void A_request_with_ids_to_send_has_no_rejection_reason()
    {
        var request = AssignmentValidator.Validate(new AssignProspectsToFlow("r-3", "123", "owner@example.com", ["a", ""]), 10_000);

        Assert.Null(IngestRejections.RejectionReason(request));
        Assert.Equal(["InvalidProspectId"], IngestRejections.Outcomes(request).Select(r => r.ErrorCode));
    }
}
