using System.Text.Json;
using System.Text.Json.Nodes;
using Worker.Contracts;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.Ingest;

/// <summary>
/// AssignProspectsToFlow through real RabbitMQ into real Postgres, one test per case of issue 3.
/// Bodies are published as plain JSON (as non-.NET publishers do) unless the case is about the envelope.
/// The tests share one host, database and vhost (<see cref="IngestHostFixture"/>) and keep to their own request ids;
/// those that count metrics exactly, start a second host or cut Postgres take their own.
/// </summary>
public sealed class IngestTests(IngestHostFixture shared, ITestOutputHelper output) : IClassFixture<IngestHostFixture>, IDisposable
{
    private const string FlowId = "1695493301223590792";
    private const string Owner = "owner@example.com";

    private readonly IDisposable attached = shared.Attach(output);

    private IngestHarness Shared => shared.Harness;

    /// <inheritdoc />
    public void Dispose() => attached.Dispose();

    [Fact]
    public async Task Not_JSON_goes_to_the_error_queue_and_the_worker_keeps_consuming()
    {
        var h = Shared;
        var requestsBefore = await h.CountRequestsAsync();
        var messageId = await h.PublishRawAsync("this is not { json");

        var error = await h.TakeFromErrorQueueAsync(messageId);
        Assert.Equal("this is not { json", error.Body);
        Assert.False(string.IsNullOrEmpty(error.Reason));
        Assert.Equal(requestsBefore, await h.CountRequestsAsync());
        await AssertStillConsumingAsync(h);
    }

    [Fact]
    public async Task A_JSON_array_goes_to_the_error_queue()
    {
        var h = Shared;
        var messageId = await h.PublishRawAsync($"[{Body("arr-1")}]");

        var error = await h.TakeFromErrorQueueAsync(messageId);
        Assert.StartsWith("[", error.Body, StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(error.Reason));
        await AssertStillConsumingAsync(h);
    }

    [Fact]
    public async Task RequestId_missing_goes_to_the_error_queue_with_the_reason()
    {
        var h = Shared;
        var messageId = await h.PublishRawAsync(Body(null, remove: "requestId"));

        var error = await h.TakeFromErrorQueueAsync(messageId);
        Assert.Contains("requestId: missing", error.Reason, StringComparison.Ordinal);
        await AssertStillConsumingAsync(h);
    }

    [Fact]
    public async Task RequestId_empty_goes_to_the_error_queue_with_the_reason()
    {
        var h = Shared;
        var requestsBefore = await h.CountRequestsAsync();
        var messageId = await h.PublishRawAsync(Body(string.Empty));

        var error = await h.TakeFromErrorQueueAsync(messageId);
        Assert.Contains("requestId: empty", error.Reason, StringComparison.Ordinal);
        Assert.Equal(requestsBefore, await h.CountRequestsAsync());
    }

    [Fact]
    public async Task RequestId_of_129_characters_is_stored_Rejected_with_the_limit_named()
    {
        var h = Shared;
        var requestId = new string('r', 129);
        await h.PublishRawAsync(Body(requestId));

        var request = await AssertRejectedAsync(h, requestId, "requestId: 129 characters; the limit is 128");
        Assert.All(request.Prospects, p => Assert.Equal(ProspectAssignmentStatus.Rejected, p.Status));
    }

    /// <summary>One field missing, empty or malformed: the request is stored Rejected with its event, the reason naming the field (and limit).</summary>
    /// <param name="field">The body field the case changes.</param>
    /// <param name="json">Its JSON value; null removes the field.</param>
    /// <param name="reason">What the rejection reason and the event's error must say.</param>
    [Theory]
    [InlineData("flowId", null, "flowId: missing")]
    [InlineData("flowId", "\"\"", "flowId: empty")]
    [InlineData("flowId", "\"12ab\"", "flowId: \"12ab\" (4 characters); must be 1 to 64 digits")]
    [InlineData("flowId", "\" 1695 4933 \"", "digits (0-9) only")]
    [InlineData("flowInstanceOwnerEmail", null, "flowInstanceOwnerEmail: missing")]
    [InlineData("flowInstanceOwnerEmail", "\"not-an-email\"", "flowInstanceOwnerEmail: \"not-an-email\" (12 characters) is not a valid email address")]
    [InlineData("crmProspectIds", "null", "crmProspectIds: missing or null")]
    [InlineData("crmProspectIds", "[]", "crmProspectIds: empty array")]
    public async Task One_field_missing_empty_or_malformed_is_Rejected_with_the_field_named(string field, string? json, string reason)
    {
        var h = Shared;
        var requestId = $"one-field-{field}-{Guid.NewGuid():N}";
        var body = JsonNode.Parse(Body(requestId))!.AsObject();
        if (json is null)
        {
            body.Remove(field);
        }
        else
        {
            body[field] = JsonNode.Parse(json);
        }

        await h.PublishRawAsync(body.ToJsonString());
        await AssertRejectedAsync(h, requestId, reason);
    }

    [Fact]
    public async Task Owner_email_in_upper_case_is_trimmed_and_grouped_with_the_lower_case_form()
    {
        var h = Shared;
        await h.PublishRawAsync(Body("email-upper", email: "  Owner@Example.COM "));
        await h.PublishRawAsync(Body("email-lower", email: "owner@example.com"));

        var upper = await h.WaitForRequestAsync("email-upper");
        var lower = await h.WaitForRequestAsync("email-lower");
        Assert.Null(upper.Status);
        Assert.Equal("Owner@Example.COM", upper.OwnerEmail);
        Assert.Equal(Owner, upper.OwnerEmailNormalized);
        Assert.Equal(Owner, lower.OwnerEmailNormalized);
        Assert.All(upper.Prospects.Concat(lower.Prospects), p =>
        {
            Assert.Equal(Owner, p.OwnerEmail);
            Assert.Equal(ProspectAssignmentStatus.Pending, p.Status);
        });
    }

    [Fact]
    public async Task CrmProspectIds_missing_is_Rejected_without_outcomes()
    {
        var h = Shared;
        await h.PublishRawAsync(Body("ids-missing", remove: "crmProspectIds"));
        var request = await AssertRejectedAsync(h, "ids-missing", "crmProspectIds: missing or null");
        Assert.Empty(request.Prospects);
        Assert.Empty((await h.OutboxEventsAsync(request)).Single().Outcomes);
    }

    /// <summary>Cases of <see cref="An_invalid_id_is_Rejected_alone"/>: the id as sent, as stored, and the reason.</summary>
    public static TheoryData<string?, string, string> InvalidIds => new()
    {
        { null, string.Empty, "crmProspectIds[1]: null" },
        { string.Empty, string.Empty, "crmProspectIds[1]: empty" },
        { "   ", "   ", "crmProspectIds[1]: whitespace only" },
        { "bad\u0001id", "bad\u0001id", "crmProspectIds[1]: contains the control character U+0001" },
        { "bad\u0000id", "bad\uFFFDid", "crmProspectIds[1]: contains the control character U+0000" },
        { new string('x', 256), new string('x', 256), "crmProspectIds[1]: 256 characters; the limit is 255" },
    };

    /// <summary>
    /// One invalid id beside two valid ones: that id alone is stored Rejected (InvalidProspectId, the reason naming its
    /// index and the rule or limit), the valid ones Pending, and no event yet.
    /// </summary>
    /// <param name="badId">The invalid id as sent (null for a JSON null).</param>
    /// <param name="storedId">How it is stored (NUL is replaced: Postgres text cannot hold it).</param>
    /// <param name="reason">What the prospect's error message must say.</param>
    [Theory]
    [MemberData(nameof(InvalidIds))]
    public async Task An_invalid_id_is_Rejected_alone(string? badId, string storedId, string reason)
    {
        var h = Shared;
        var requestId = $"bad-id-{Guid.NewGuid():N}";
        await h.PublishRawAsync(Body(requestId, ids: new JsonArray("a1", badId, "a2")));
        await AssertIdRejectedAloneAsync(h, requestId, storedId, reason);
    }

    [Fact]
    public async Task A_request_whose_ids_are_all_invalid_completes_at_once_as_Rejected()
    {
        var h = Shared;
        await h.PublishRawAsync(Body("ids-all-bad", ids: new JsonArray(string.Empty, "  ")));

        var request = await AssertRejectedAsync(h, "ids-all-bad", "crmProspectIds: none of the 2 unique ids is valid");
        Assert.Equal(2, request.RejectedCount);
        Assert.Equal(2, (await h.OutboxEventsAsync(request)).Single().Outcomes.Count);
    }

    [Fact]
    public async Task Ten_thousand_and_one_ids_are_Rejected_with_the_limit_named()
    {
        var h = Shared;
        var ids = new JsonArray(Enumerable.Range(0, 10_001).Select(i => (JsonNode?)JsonValue.Create($"p{i}")).ToArray());
        await h.PublishRawAsync(Body("ids-10001", ids: ids));

        var request = await AssertRejectedAsync(h, "ids-10001", "crmProspectIds: 10001 ids; the limit is 10000");
        // Over the limit the request alone is Rejected: no per-id rows, and an event with the error and no outcomes,
        // so an oversized request can never produce an event larger than the broker accepts.
        Assert.Empty(request.Prospects);
        Assert.Equal(0, request.ProspectCount);
        var completed = (await h.OutboxEventsAsync(request)).Single();
        Assert.Empty(completed.Outcomes);
        Assert.Contains(completed.Errors!, e => e.Contains("10001 ids; the limit is 10000", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Ten_thousand_valid_ids_are_accepted_and_stored_Pending()
    {
        var h = Shared;
        var ids = Enumerable.Range(0, 10_000).Select(i => $"0035g{i:D13}").ToArray();
        await h.PublishAsync(new AssignProspectsToFlow("ids-10000", FlowId, Owner, ids));

        var request = await h.WaitForRequestAsync("ids-10000");
        Assert.Null(request.Status);
        Assert.Equal(10_000, request.ProspectCount);
        Assert.Equal(10_000, request.PendingCount);
        Assert.Equal(10_000, request.Prospects.Count(p => p.Status == ProspectAssignmentStatus.Pending));
        Assert.Equal(ids.Order(StringComparer.Ordinal), request.Prospects.Select(p => p.CrmProspectId).Order(StringComparer.Ordinal));
        Assert.Empty(await h.OutboxEventsAsync(request));
    }

    [Fact]
    public async Task Duplicate_ids_inside_one_request_collapse_to_one_row()
    {
        var h = Shared;
        await h.PublishRawAsync(Body("dups", ids: new JsonArray("a1", "a2", "a1", "a1", "a2", "a3")));

        var request = await h.WaitForRequestAsync("dups");
        Assert.Equal(["a1", "a2", "a3"], request.Prospects.Select(p => p.CrmProspectId).Order(StringComparer.Ordinal));
        Assert.Equal(3, request.ProspectCount);
        Assert.Equal(3, request.PendingCount);
    }

    [Fact]
    public async Task Unknown_extra_fields_are_ignored()
    {
        var h = Shared;
        var body = JsonNode.Parse(Body("extra"))!.AsObject();
        body["priority"] = "high";
        body["nested"] = new JsonObject { ["x"] = new JsonArray(1, 2) };
        await h.PublishRawAsync(body.ToJsonString());

        var request = await h.WaitForRequestAsync("extra");
        Assert.Null(request.Status);
        Assert.Equal(2, request.PendingCount);
    }

    [Fact]
    public async Task The_same_message_delivered_twice_is_stored_once()
    {
        await using var h = await IngestHarness.StartAsync(output);
        var message = new AssignProspectsToFlow("twice", FlowId, Owner, ["a1", "a2"]);
        await h.PublishAsync(message);
        await h.PublishAsync(message with { CrmProspectIds = ["a2", "a1", "a1"] }); // same content: order and duplicates do not matter

        await h.WaitForIngestedAsync("duplicate", 1);
        Assert.Equal(1, h.Ingested.GetValueOrDefault("accepted"));
        var request = await h.WaitForRequestAsync("twice");
        Assert.Equal(2, request.Prospects.Count);
        Assert.Equal(1, await h.CountRequestsAsync());
        Assert.Equal(0u, await h.ErrorQueueDepthAsync());
    }

    [Fact]
    public async Task The_same_requestId_with_different_content_goes_to_the_error_queue_and_the_original_stands()
    {
        var h = Shared;
        await h.PublishRawAsync(Body("conflict", ids: new JsonArray("a1", "a2")));
        var original = await h.WaitForRequestAsync("conflict");

        var messageId = await h.PublishRawAsync(Body("conflict", ids: new JsonArray("b1")));
        var error = await h.TakeFromErrorQueueAsync(messageId);
        Assert.Contains("requestId \"conflict\" was already stored with different content", error.Reason, StringComparison.Ordinal);
        Assert.Contains("\"b1\"", error.Body, StringComparison.Ordinal);

        var after = await h.WaitForRequestAsync("conflict");
        Assert.Equal(original.ContentHash, after.ContentHash);
        Assert.Equal(["a1", "a2"], after.Prospects.Select(p => p.CrmProspectId).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Plain_JSON_from_a_raw_AMQP_publish_is_stored()
    {
        var h = Shared;
        await h.PublishRawAsync("""
            { "requestId": "crm-sync-2026-11-29-000123",
              "flowId": "1695493301223590792",
              "flowInstanceOwnerEmail": "owner@example.com",
              "crmProspectIds": ["a5V1Q00A120DP4CVAW", "0035g00000XYZabAAB"] }
            """);

        var request = await h.WaitForRequestAsync("crm-sync-2026-11-29-000123");
        Assert.Equal(FlowId, request.FlowId);
        Assert.Equal(["0035g00000XYZabAAB", "a5V1Q00A120DP4CVAW"], request.Prospects.Select(p => p.CrmProspectId).Order(StringComparer.Ordinal));
        Assert.All(request.Prospects, p => Assert.Equal(FlowId, p.FlowId));
    }

    [Fact]
    public async Task Plain_JSON_without_a_content_type_is_stored()
    {
        var h = Shared;
        await h.PublishRawAsync(Body("no-content-type"), contentType: null);
        var request = await h.WaitForRequestAsync("no-content-type");
        Assert.Equal(2, request.PendingCount);
    }

    [Fact]
    public async Task Two_workers_receiving_the_same_request_at_once_store_it_once()
    {
        await using var h = await IngestHarness.StartAsync(output);
        await h.StartHostAsync(h.Database.ConnectionString);
        for (var i = 0; i < 20; i++)
        {
            await h.PublishRawAsync(Body("raced", ids: new JsonArray("a1", "a2", "a3")));
        }

        await h.WaitForIngestedAsync("duplicate", 19);
        Assert.Equal(1, h.Ingested.GetValueOrDefault("accepted"));
        var request = await h.WaitForRequestAsync("raced");
        Assert.Equal(3, request.Prospects.Count);
        Assert.Equal(1, await h.CountRequestsAsync());
        Assert.Equal(0u, await h.ErrorQueueDepthAsync());
    }

    [Fact]
    public async Task Postgres_unreachable_while_a_message_arrives_then_back_stores_it_exactly_once()
    {
        await using var h = await IngestHarness.CreateAsync(output);
        var target = new Npgsql.NpgsqlConnectionStringBuilder(h.Database.ConnectionString);
        await using var proxy = new TcpProxy(target.Host!, target.Port);
        var proxied = new Npgsql.NpgsqlConnectionStringBuilder(h.Database.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port, Timeout = 3 };
        await h.StartHostAsync(proxied.ConnectionString, "--Ingest:RetryMaxInterval=00:00:00.500");

        proxy.Cut();
        await h.PublishRawAsync(Body("outage"));
        await Poll.UntilAsync(() => Task.FromResult(proxy.RefusedConnections >= 2), "the worker to retry Postgres while it is unreachable");
        Assert.Equal(0, await h.CountRequestsAsync());
        proxy.Restore();

        var request = await h.WaitForRequestAsync("outage");
        Assert.Equal(2, request.PendingCount);
        Assert.Equal(2, request.Prospects.Count);
        await AssertStillConsumingAsync(h);
        Assert.Equal(2, await h.CountRequestsAsync());
        Assert.Equal(0u, await h.ErrorQueueDepthAsync());
    }

    private static string Body(
        string? requestId, string flowId = FlowId, string email = Owner, JsonNode? ids = null, string? remove = null)
    {
        var body = new JsonObject
        {
            ["requestId"] = requestId,
            ["flowId"] = flowId,
            ["flowInstanceOwnerEmail"] = email,
            ["crmProspectIds"] = ids ?? new JsonArray("a5V1Q00A120DP4CVAW", "0035g00000XYZabAAB"),
        };
        if (remove is not null)
        {
            body.Remove(remove);
        }

        return body.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    private static async Task AssertStillConsumingAsync(IngestHarness h)
    {
        var requestId = $"after-bad-message-{Guid.NewGuid():N}"; // unique: on a shared host an earlier test's request would answer at once
        await h.PublishRawAsync(Body(requestId));
        var request = await h.WaitForRequestAsync(requestId);
        Assert.Equal(2, request.PendingCount);
    }

    private static async Task<AssignmentRequest> AssertRejectedAsync(IngestHarness h, string requestId, string reasonPart)
    {
        var request = await h.WaitForRequestAsync(requestId);
        Assert.Equal(RequestStatus.Rejected, request.Status);
        Assert.NotNull(request.CompletedAt);
        Assert.Equal(0, request.PendingCount);
        Assert.Contains(reasonPart, request.RejectionReason, StringComparison.Ordinal);
        Assert.DoesNotContain(request.Prospects, p => p.Status != ProspectAssignmentStatus.Rejected);

        var completed = Assert.Single(await h.OutboxEventsAsync(request));
        Assert.Equal(RequestStatus.Rejected, completed.Status);
        Assert.Equal(requestId, completed.RequestId);
        Assert.Contains(completed.Errors!, e => e.Contains(reasonPart, StringComparison.Ordinal));
        Assert.Equal(request.Prospects.Count, completed.Outcomes.Count);
        Assert.All(completed.Outcomes, o => Assert.Equal(ProspectStatus.Rejected, o.Status));
        return request;
    }

    private static async Task AssertIdRejectedAloneAsync(IngestHarness h, string requestId, string storedId, string reasonPart)
    {
        var request = await h.WaitForRequestAsync(requestId);
        Assert.Null(request.Status);
        Assert.Equal(3, request.ProspectCount);
        Assert.Equal(2, request.PendingCount);
        Assert.Equal(1, request.RejectedCount);
        Assert.Equal(["a1", "a2"], request.Prospects.Where(p => p.Status == ProspectAssignmentStatus.Pending).Select(p => p.CrmProspectId).Order(StringComparer.Ordinal));
        var rejected = Assert.Single(request.Prospects, p => p.Status == ProspectAssignmentStatus.Rejected);
        Assert.Equal(storedId, rejected.CrmProspectId);
        Assert.Equal("InvalidProspectId", rejected.ErrorCode);
        Assert.Contains(reasonPart, rejected.ErrorMessage, StringComparison.Ordinal);
        Assert.NotNull(rejected.CompletedAt);
        Assert.Empty(await h.OutboxEventsAsync(request)); // the request completes when the pending ids have outcomes
    }
}
