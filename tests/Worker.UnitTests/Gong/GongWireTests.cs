using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using Polly.Timeout;
using Worker.Host.Gong;
using Worker.Persistence.Entities;

namespace Worker.UnitTests.Gong;

public sealed class GongWireTests
{
    [Fact]
    public void The_assign_body_uses_Gongs_exact_names()
    {
        var json = JsonSerializer.Serialize(new GongAssignRequest(["a5V1Q00A120DP4CVAW"], "1695493301223590792", "test@test.com"), GongJson.Options);

        Assert.Equal("""{"crmProspectsIds":["a5V1Q00A120DP4CVAW"],"flowId":"1695493301223590792","flowInstanceOwnerEmail":"test@test.com"}""", json);
        Assert.Equal("""{"crmProspectsIds":["x"]}""", JsonSerializer.Serialize(new GongLookupRequest(["x"]), GongJson.Options));
    }

    [Fact]
    public void A_200_body_parses_with_unknown_fields_numeric_ids_and_every_fraction_length()
    {
        const string body = """
            { "requestId": "4al018gzaztcr8nbukw", "newTopLevel": {"a": [1, 2]},
              "prospectsAssigned": [
                { "flowId": 1695493301223590792, "crmProspectId": "p0", "flowInstanceId": 1234361284629356789,
                  "flowInstanceCreateDate": "2019-01-20T00:00:00-08:00", "flowInstanceStatus": "FinishedNoReply", "exclusive": true, "extra": null },
                { "flowId": "1", "crmProspectId": "p1", "flowInstanceCreateDate": "2016-02-16T03:57:04.834+05:30" },
                { "flowId": "1", "crmProspectId": "p7", "flowInstanceCreateDate": "2020-11-20T21:30:07.2336921Z" },
                { "flowId": "1", "crmProspectId": "p6", "flowInstanceCreateDate": "2020-11-20T21:30:07.233692Z" },
                { "flowId": "1", "crmProspectId": "bad-date", "flowInstanceCreateDate": "yesterday" },
                null ],
              "prospectsNotAssigned": [ { "crmProspectId": "n1", "errorCode": "InvalidState", "errorMessage": "in exclusive flow", "hint": 1 } ] }
            """;

        var parsed = GongJson.ParseProspects(body);

        Assert.NotNull(parsed);
        Assert.Equal("4al018gzaztcr8nbukw", parsed.RequestId);
        var first = parsed.ProspectsAssigned![0]!;
        Assert.Equal("1695493301223590792", first.FlowId);
        Assert.Equal("1234361284629356789", first.FlowInstanceId);
        Assert.Equal("FinishedNoReply", first.FlowInstanceStatus);
        Assert.Equal(new DateTimeOffset(2019, 1, 20, 8, 0, 0, TimeSpan.Zero), first.FlowInstanceCreateDate);
        Assert.Equal(new DateTimeOffset(2016, 2, 15, 22, 27, 4, 834, TimeSpan.Zero), parsed.ProspectsAssigned[1]!.FlowInstanceCreateDate);
        Assert.Equal(new DateTimeOffset(2020, 11, 20, 21, 30, 7, TimeSpan.Zero).AddTicks(2336921), parsed.ProspectsAssigned[2]!.FlowInstanceCreateDate);
        Assert.Equal(new DateTimeOffset(2020, 11, 20, 21, 30, 7, TimeSpan.Zero).AddTicks(2336920), parsed.ProspectsAssigned[3]!.FlowInstanceCreateDate);
        Assert.Null(parsed.ProspectsAssigned[4]!.FlowInstanceCreateDate);
        Assert.Null(parsed.ProspectsAssigned[5]);
        Assert.Equal(("n1", "InvalidState"), (parsed.ProspectsNotAssigned![0]!.CrmProspectId, parsed.ProspectsNotAssigned[0]!.ErrorCode));
    }

    [Fact]
    public void Absent_lists_parse_as_null_and_a_non_object_body_is_unreadable()
    {
        var parsed = GongJson.ParseProspects("""{"requestId":"r"}""");
        Assert.NotNull(parsed);
        Assert.Null(parsed.ProspectsAssigned);
        Assert.Null(parsed.ProspectsNotAssigned);
        Assert.Null(GongJson.ParseProspects("<html>502</html>"));
        Assert.Null(GongJson.ParseProspects(string.Empty));
    }

    [Fact]
    public void An_error_body_yields_Gongs_messages()
    {
        var error = GongJson.ParseError("""{"requestId":"abc","errors":["Flow not found","second"]}""");
        Assert.Equal(("abc", "Flow not found; second"), (error!.RequestId, error.Message()));
        Assert.Null(GongJson.ParseError("""{"requestId":"abc"}""")!.Message());
    }

    [Theory]
    [InlineData("https://api.gong.io")]
    [InlineData("https://api.gong.io/")]
    [InlineData("https://api.gong.io//")]
    public void The_base_URL_joins_without_doubled_slashes(string baseUrl)
    {
        var options = new GongOptions { BaseUrl = baseUrl };
        Assert.Equal("https://api.gong.io/v2/flows/prospects/assign", new Uri(options.GetBaseUri(), GongApiClient.AssignPath).ToString());
        Assert.Equal("https://api.gong.io/v2/flows/prospects", new Uri(options.GetBaseUri(), GongApiClient.LookupPath).ToString());
    }

    [Theory]
    [InlineData("https://us-49467.api.gong.io/gateway")]
    [InlineData("https://us-49467.api.gong.io/gateway/")]
    public void A_base_URL_with_a_path_keeps_it(string baseUrl)
    {
        var options = new GongOptions { BaseUrl = baseUrl };
        Assert.Equal("https://us-49467.api.gong.io/gateway/v2/flows/prospects/assign", new Uri(options.GetBaseUri(), GongApiClient.AssignPath).ToString());
    }

    [Theory]
    [InlineData(200, "Answered", GongCallOutcomeClass.Answered)]
    [InlineData(429, "TooManyRequests", GongCallOutcomeClass.SafeToResend)]
    [InlineData(500, "OutcomeUnknown", GongCallOutcomeClass.OutcomeUnknown)]
    [InlineData(502, "OutcomeUnknown", GongCallOutcomeClass.OutcomeUnknown)]
    [InlineData(503, "OutcomeUnknown", GongCallOutcomeClass.OutcomeUnknown)]
    [InlineData(504, "OutcomeUnknown", GongCallOutcomeClass.OutcomeUnknown)]
    [InlineData(400, "BadRequest", GongCallOutcomeClass.RefusedForBatch)]
    [InlineData(403, "Forbidden", GongCallOutcomeClass.RefusedForBatch)]
    [InlineData(404, "NotFound", GongCallOutcomeClass.RefusedForBatch)]
    [InlineData(401, "Unauthorized", GongCallOutcomeClass.RefusedForAll)]
    [InlineData(409, "Unexpected", GongCallOutcomeClass.RefusedForBatch)]
    public void Statuses_are_classified_per_the_design(int status, string kind, GongCallOutcomeClass outcomeClass)
    {
        var classified = GongCallClassifier.FromStatus(status);
        Assert.Equal(kind, classified.ToString());
        Assert.Equal(outcomeClass, GongCallClassifier.ToOutcomeClass(classified));
    }

    [Fact]
    public void Only_failures_before_sending_are_safe_to_resend()
    {
        Assert.True(GongCallClassifier.IsNotSent(new HttpRequestException(HttpRequestError.ConnectionError, "refused", new SocketException((int)SocketError.ConnectionRefused))));
        Assert.True(GongCallClassifier.IsNotSent(new HttpRequestException(HttpRequestError.NameResolutionError, "dns", new SocketException((int)SocketError.HostNotFound))));
        Assert.True(GongCallClassifier.IsNotSent(new BrokenCircuitException()));

        // After sending: reset, response ended, timeout. Never resent blindly.
        Assert.False(GongCallClassifier.IsNotSent(new HttpRequestException(HttpRequestError.ConnectionError, "reset", new SocketException((int)SocketError.ConnectionReset))));
        Assert.False(GongCallClassifier.IsNotSent(new HttpRequestException(HttpRequestError.ResponseEnded, "ended", new IOException("reset"))));
        Assert.False(GongCallClassifier.IsNotSent(new TimeoutRejectedException()));
        Assert.False(GongCallClassifier.IsNotSent(new TaskCanceledException()));
    }

    [Fact]
    public void The_circuit_breaker_counts_service_failures_but_not_429_or_4xx()
    {
        using var ok = new HttpResponseMessage(HttpStatusCode.OK);
        using var throttled = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        using var bad = new HttpResponseMessage(HttpStatusCode.BadRequest);
        using var broken = new HttpResponseMessage(HttpStatusCode.BadGateway);
        Assert.False(GongCallClassifier.IsServiceFailure(ok, null));
        Assert.False(GongCallClassifier.IsServiceFailure(throttled, null));
        Assert.False(GongCallClassifier.IsServiceFailure(bad, null));
        Assert.True(GongCallClassifier.IsServiceFailure(broken, null));
        Assert.True(GongCallClassifier.IsServiceFailure(null, new TimeoutRejectedException()));
        Assert.True(GongCallClassifier.IsServiceFailure(null, new HttpRequestException("refused")));
        Assert.False(GongCallClassifier.IsServiceFailure(null, new OperationCanceledException()));
    }

    [Fact]
    public void Retry_After_reads_seconds_and_HTTP_dates()
    {
        var now = new DateTimeOffset(2026, 11, 29, 10, 0, 0, TimeSpan.Zero);
        Assert.Equal(now.AddSeconds(2), RetryAfter.Until("2", now));
        Assert.Equal(now.AddSeconds(21600), RetryAfter.Until("21600", now));
        Assert.Equal(now.AddSeconds(1.5), RetryAfter.Until("1.5", now));
        Assert.Equal(now.AddSeconds(30), RetryAfter.Until("Sun, 29 Nov 2026 10:00:30 GMT", now));
        Assert.Equal(now, RetryAfter.Until("Sun, 29 Nov 2026 09:00:00 GMT", now));
        Assert.Equal(now, RetryAfter.Until("-5", now));
        Assert.Null(RetryAfter.Until("soon", now));
        Assert.Null(RetryAfter.Until((string?)null, now));

        using var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter = new RetryConditionHeaderValue(TimeSpan.FromSeconds(7));
        Assert.Equal(now.AddSeconds(7), RetryAfter.Until(response.Headers, now));
    }
}

public sealed class GongOptionsTests
{
    [Fact]
    public void Defaults_with_an_access_key_are_valid()
    {
        var options = Bind(("Gong:AccessKey", "k"), ("Gong:AccessKeySecret", "s"));
        Assert.Equal(("https://api.gong.io", 200, 3, 10_000, TimeSpan.FromSeconds(90)),
            (options.BaseUrl, options.MaxBatchSize, options.RequestsPerSecond, options.DailyCallLimit, options.AttemptTimeout));
    }

    [Theory]
    [InlineData("Gong__AccessKey", "Gong:AccessKeySecret", "s")]
    [InlineData("Gong__BearerToken", "Gong:BaseUrl", "https://api.gong.io")]
    public void Missing_or_half_credentials_fail_naming_the_variables(string expected, string key, string value)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Bind((key, value)));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Both_auth_modes_at_once_fail()
    {
        var error = Assert.Throws<OptionsValidationException>(() => Bind(("Gong:AccessKey", "k"), ("Gong:AccessKeySecret", "s"), ("Gong:BearerToken", "t")));
        Assert.Contains("not both", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://api.gong.io", false)]
    [InlineData("ftp://api.gong.io", false)]
    [InlineData("api.gong.io", false)]
    [InlineData("http://127.0.0.1:5080", true)]
    [InlineData("http://localhost:5080/", true)]
    [InlineData("http://[::1]:5080", true)]
    [InlineData("https://us-49467.api.gong.io", true)]
    public void Plain_http_is_accepted_only_for_loopback(string baseUrl, bool valid)
    {
        OptionsValidationException? error = null;
        try
        {
            Bind(("Gong:BaseUrl", baseUrl), ("Gong:BearerToken", "t"));
        }
        catch (OptionsValidationException ex)
        {
            error = ex;
        }

        Assert.Equal(valid, error is null);
        if (!valid)
        {
            Assert.Contains("Gong__BaseUrl", error!.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("Gong:MaxBatchSize", "201", "Gong__MaxBatchSize")]
    [InlineData("Gong:RequestsPerSecond", "0", "Gong__RequestsPerSecond")]
    [InlineData("Gong:AttemptTimeout", "00:00:00", "Gong__AttemptTimeout")]
    public void Out_of_range_numbers_fail_naming_the_setting(string key, string value, string expected)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Bind(("Gong:BearerToken", "t"), (key, value)));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    private static GongOptions Bind(params (string Key, string Value)[] settings)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build();
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new Microsoft.Extensions.Hosting.HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddConfiguration(configuration);
        builder.AddGongClient();
        using var provider = builder.Services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<GongOptions>>().Value;
    }
}
