using Worker.Host.Dispatch;
using Worker.Host.Gong;

namespace Worker.UnitTests.Gong;

/// <summary>
/// Every answer shape of the README table "Every call is classified and handled" (DESIGN.md "Gong client"), mapped to
/// per-prospect results without HTTP.
/// </summary>
public sealed class GongAnswerMapperTests
{
    private const string Flow = "1695493301223590792";
    private static readonly DateTimeOffset Started = new(2026, 11, 30, 10, 0, 0, TimeSpan.Zero);
    private static readonly HashSet<string> NoneUncertain = new(StringComparer.Ordinal);

    [Fact]
    public void A_200_maps_assigned_not_assigned_UnexpectedError_and_missing_per_prospect()
    {
        var result = Answered($$"""
            { "requestId": "r-1",
              "prospectsAssigned": [ { "flowId": "{{Flow}}", "crmProspectId": "ok", "flowInstanceId": "777", "flowInstanceStatus": "Running" } ],
              "prospectsNotAssigned": [
                { "flowId": "{{Flow}}", "crmProspectId": "busy", "errorCode": "InvalidState", "errorMessage": "Prospect is in an exclusive flow" },
                { "flowId": "{{Flow}}", "crmProspectId": "bad", "errorCode": "InvalidArgument", "errorMessage": "Invalid crmId <bad>" },
                { "flowId": "{{Flow}}", "crmProspectId": "later", "errorCode": "UnexpectedError", "errorMessage": "Try again" },
                { "flowId": "{{Flow}}", "crmProspectId": "blank", "errorCode": " " } ] }
            """);

        var answer = GongAnswerMapper.MapAssigned(["ok", "busy", "bad", "later", "blank", "ghost"], result, NoneUncertain);

        Assert.Empty(answer.ToConfirm);
        Assert.Equal(
            [
                ("ok", ProspectResultKind.Assigned, null),
                ("busy", ProspectResultKind.NotAssigned, "InvalidState"),
                ("bad", ProspectResultKind.NotAssigned, "InvalidArgument"),
                ("later", ProspectResultKind.RetryLater, "UnexpectedError"),
                ("blank", ProspectResultKind.NotAssigned, "Unknown"),
                ("ghost", ProspectResultKind.Failed, GongAnswerMapper.MissingFromResponse),
            ],
            answer.Decided.Select(p => (p.CrmProspectId, p.Kind, p.ErrorCode)));
        var ok = answer.Decided[0];
        Assert.Equal(("777", "Running", "r-1", false), (ok.FlowInstanceId, ok.FlowInstanceStatus, ok.GongRequestId, ok.Reconciled));
        Assert.Equal("Prospect is in an exclusive flow", answer.Decided[1].ErrorMessage);
        Assert.All(answer.Decided, p => Assert.Equal("r-1", p.GongRequestId));
        Assert.All(answer.Decided, p => Assert.False(p.ReconcileFirst));
        Assert.All(answer.Decided, p => Assert.Null(p.NotBefore));
    }

    [Fact]
    public void A_200_with_absent_lists_fails_every_prospect_MissingFromResponse_never_Assigned()
    {
        var answer = GongAnswerMapper.MapAssigned(["a", "b"], Answered("""{ "requestId": "r-2" }"""), NoneUncertain);

        Assert.All(answer.Decided, p => Assert.Equal((ProspectResultKind.Failed, GongAnswerMapper.MissingFromResponse), (p.Kind, p.ErrorCode)));
    }

    [Theory]
    [InlineData(true, 0, 1)]
    [InlineData(false, 1, 0)]
    public void Already_in_this_flow_after_an_unknown_outcome_waits_for_a_lookup_otherwise_it_is_NotAssigned(bool uncertain, int decided, int toConfirm)
    {
        var result = Answered($$"""
            { "requestId": "r-3", "prospectsNotAssigned": [
                { "flowId": "{{Flow}}", "crmProspectId": "mine", "errorCode": "InvalidState", "errorMessage": "already in flow" } ] }
            """);

        var answer = GongAnswerMapper.MapAssigned(["mine"], result, new HashSet<string>(uncertain ? ["mine"] : [], StringComparer.Ordinal));

        Assert.Equal((decided, toConfirm), (answer.Decided.Count, answer.ToConfirm.Count));
        Assert.All(answer.Decided.Concat(answer.ToConfirm), p => Assert.Equal((ProspectResultKind.NotAssigned, "InvalidState"), (p.Kind, p.ErrorCode)));
    }

    [Fact]
    public void A_lookup_finds_only_open_instances_in_the_target_flow()
    {
        var result = Answered($$"""
            { "requestId": "l-1", "prospectsAssigned": [
                { "flowId": "{{Flow}}", "crmProspectId": "here", "flowInstanceId": "42", "flowInstanceStatus": "Paused" },
                { "flowId": "999", "crmProspectId": "elsewhere", "flowInstanceId": "43", "flowInstanceStatus": "Running" } ] }
            """);

        var answer = GongAnswerMapper.MapLookup(["here", "elsewhere", "nowhere"], result, Flow);

        var here = Assert.Single(answer.Found);
        Assert.Equal(("here", ProspectResultKind.Assigned, "42", "Paused", true, "l-1"),
            (here.CrmProspectId, here.Kind, here.FlowInstanceId, here.FlowInstanceStatus, here.Reconciled, here.GongRequestId));
        Assert.Equal(["elsewhere", "nowhere"], answer.Absent);
    }

    [Theory]
    [InlineData(nameof(GongCallKind.OutcomeUnknown), 500, "OutcomeUnknown")]
    [InlineData(nameof(GongCallKind.OutcomeUnknown), null, "OutcomeUnknown")]
    [InlineData(nameof(GongCallKind.Cancelled), null, "Shutdown")]
    public void A_timeout_reset_5xx_or_shutdown_uses_an_attempt_and_waits_to_be_looked_up(string kind, int? status, string code)
    {
        var settledAt = Started + TimeSpan.FromSeconds(91);

        var prospect = GongAnswerMapper.Unknown("u", Failure(Enum.Parse<GongCallKind>(kind), status, "attempt timeout"), settledAt);

        Assert.Equal((ProspectResultKind.RetryLater, code, true, (DateTimeOffset?)settledAt, "attempt timeout"),
            (prospect.Kind, prospect.ErrorCode, prospect.ReconcileFirst, prospect.NotBefore, prospect.ErrorMessage));
    }

    [Theory]
    [InlineData("HttpRequestException (ConnectionError): Connection refused", 0.2)]
    [InlineData("circuit open", 15)]
    public void A_refused_connection_stops_the_send_and_waits_the_retry_delay_or_the_breakers_break(string error, double waitSeconds)
    {
        var now = Started + TimeSpan.FromSeconds(1);

        var halt = GongAnswerMapper.ConnectionFailed(Failure(GongCallKind.NotSent, null, error), now, new GongOptions());
        var prospect = GongAnswerMapper.NotProcessed("c", halt, reconcileFirst: false);

        Assert.Equal((ProspectResultKind.Requeue, "ConnectionFailed", error, false, (DateTimeOffset?)(now + TimeSpan.FromSeconds(waitSeconds))),
            (prospect.Kind, prospect.ErrorCode, prospect.ErrorMessage, prospect.ReconcileFirst, prospect.NotBefore));
    }

    [Theory]
    [InlineData("TooManyRequests", "429 at …: Retry-After 2s + margin 1s")]
    [InlineData("Unauthorized", "Unauthorized: bad access key")]
    [InlineData("RateGateBlocked", "daily budget spent")]
    public void A_429_a_401_or_a_blocked_gate_requeues_without_an_attempt_and_the_shared_block_holds_the_work(string code, string reason)
    {
        var prospect = GongAnswerMapper.NotProcessed("q", new SendHalt(code, reason, null), reconcileFirst: false);

        Assert.Equal((ProspectResultKind.Requeue, code, reason, false, (DateTimeOffset?)null),
            (prospect.Kind, prospect.ErrorCode, prospect.ErrorMessage, prospect.ReconcileFirst, prospect.NotBefore));
    }

    [Fact]
    public void A_prospect_not_reached_keeps_ReconcileFirst_when_an_earlier_call_may_have_assigned_it()
    {
        var prospect = GongAnswerMapper.NotProcessed("r", halt: null, reconcileFirst: true);

        Assert.Equal((ProspectResultKind.Requeue, "NotSent", true), (prospect.Kind, prospect.ErrorCode, prospect.ReconcileFirst));
    }

    [Theory]
    [InlineData("Invalid crmId <bad-id>", "Invalid crmId <bad-id>")]
    [InlineData(null, "Gong refused the request (400)")]
    public void A_400_for_one_id_alone_is_Failed_BadRequest_with_Gongs_message(string? error, string message)
    {
        var prospect = GongAnswerMapper.BadRequest("bad-id", Failure(GongCallKind.BadRequest, 400, error, "e-400"));

        Assert.Equal((ProspectResultKind.Failed, "BadRequest", message, "e-400"), (prospect.Kind, prospect.ErrorCode, prospect.ErrorMessage, prospect.GongRequestId));
    }

    [Theory]
    [InlineData(nameof(GongCallKind.Forbidden), 403, "Forbidden", "Missing scope api:flows:write")]
    [InlineData(nameof(GongCallKind.NotFound), 404, "FlowNotFound", "Flow 1695493301223590792 not found")]
    public void A_403_or_404_fails_the_prospect_with_Gongs_message(string kind, int status, string code, string message)
    {
        var prospect = GongAnswerMapper.RefusedForFlow("f", Failure(Enum.Parse<GongCallKind>(kind), status, message, "e-" + status));

        Assert.Equal((ProspectResultKind.Failed, code, message, "e-" + status), (prospect.Kind, prospect.ErrorCode, prospect.ErrorMessage, prospect.GongRequestId));
    }

    [Fact]
    public void Only_a_403_or_404_refuses_the_flow()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => GongAnswerMapper.RefusedForFlow("f", Failure(GongCallKind.BadRequest, 400, "x")));
    }

    [Fact]
    public void Another_status_is_retried_later_with_the_status_as_its_code()
    {
        var prospect = GongAnswerMapper.Unexpected("x", Failure(GongCallKind.Unexpected, 409, "HTTP 409 Conflict"));

        Assert.Equal((ProspectResultKind.RetryLater, "Http409", "HTTP 409 Conflict", false), (prospect.Kind, prospect.ErrorCode, prospect.ErrorMessage, prospect.ReconcileFirst));
    }

    [Fact]
    public void A_failed_lookup_requeues_still_to_be_reconciled_never_Assigned_on_a_guess()
    {
        var notBefore = Started + TimeSpan.FromSeconds(2);

        var prospect = GongAnswerMapper.LookupFailed("k", Failure(GongCallKind.OutcomeUnknown, 500, "lookup broke"), notBefore);

        Assert.Equal((ProspectResultKind.Requeue, "LookupFailed", true, (DateTimeOffset?)notBefore), (prospect.Kind, prospect.ErrorCode, prospect.ReconcileFirst, prospect.NotBefore));
    }

    [Fact]
    public void A_prospect_past_its_attempts_is_Failed_RetriesExhausted_with_the_reason()
    {
        var prospect = GongAnswerMapper.Exhausted("e", "Gong's lookup did not find it in the flow");

        Assert.Equal((ProspectResultKind.Failed, "RetriesExhausted"), (prospect.Kind, prospect.ErrorCode));
        Assert.EndsWith("Gong's lookup did not find it in the flow", prospect.ErrorMessage, StringComparison.Ordinal);
    }

    private static GongHttpResult Answered(string body)
    {
        var answer = GongJson.ParseProspects(body) ?? throw new ArgumentException("unreadable test body", nameof(body));
        return new GongHttpResult(GongCallKind.Answered, 200, answer.RequestId, answer, null, null, Started, TimeSpan.FromMilliseconds(80));
    }

    private static GongHttpResult Failure(GongCallKind kind, int? status, string? error, string? requestId = null) =>
        new(kind, status, requestId, null, error, null, Started, TimeSpan.FromMilliseconds(80));
}
