using System.Text;
using Worker.Contracts;
using Worker.Persistence.Entities;

namespace Worker.IntegrationTests.Ingest;

/// <summary>
/// Issue 11 case 1: user text holding astral-plane characters, lone surrogates and other awkward Unicode, through real
/// RabbitMQ into real Postgres. Bodies are written as a non-.NET publisher writes them (every non-ASCII character as a
/// <c>\uXXXX</c> escape, as Python's json.dumps does), because that is the only way a lone surrogate reaches the wire.
/// The tests share one host (<see cref="IngestHostFixture"/>) and keep to their own request ids.
/// </summary>
public sealed class IngestUnicodeTests(IngestHostFixture shared, ITestOutputHelper output) : IClassFixture<IngestHostFixture>, IDisposable
{
    private const string FlowId = "1695493301223590792";
    private const string Owner = "owner@example.com";
    private static readonly string Emoji = char.ConvertFromUtf32(0x1F600);

    private readonly IDisposable attached = shared.Attach(output);

    /// <inheritdoc />
    public void Dispose() => attached.Dispose();

    [Fact]
    public async Task An_id_of_300_emoji_beside_a_valid_id_is_Rejected_alone_and_the_valid_id_is_stored()
    {
        var h = shared.Harness;
        var emojiId = string.Concat(Enumerable.Repeat(Emoji, 300));
        await h.PublishRawAsync(AsciiJson("emoji-id", FlowId, Owner, ["ok-1", emojiId]));

        var request = await h.WaitForRequestAsync("emoji-id");
        Assert.Null(request.Status);
        Assert.Equal(1, request.PendingCount);
        Assert.Equal("ok-1", Assert.Single(request.Prospects, p => p.Status == ProspectAssignmentStatus.Pending).CrmProspectId);
        var rejected = Assert.Single(request.Prospects, p => p.Status == ProspectAssignmentStatus.Rejected);
        Assert.Equal("InvalidProspectId", rejected.ErrorCode);
        Assert.Contains("crmProspectIds[1]: 600 characters; the limit is 255", rejected.ErrorMessage, StringComparison.Ordinal);
        Assert.True(WellFormed(rejected.CrmProspectId), "the stored form is cut between characters, never inside one");
        Assert.StartsWith(string.Concat(Enumerable.Repeat(Emoji, 200)), rejected.CrmProspectId, StringComparison.Ordinal);
        Assert.Equal(0u, await h.ErrorQueueDepthAsync());
    }

    [Fact]
    public async Task A_flowId_of_200_emoji_Rejects_the_request_with_its_event()
    {
        var h = shared.Harness;
        await h.PublishRawAsync(AsciiJson("emoji-flow", string.Concat(Enumerable.Repeat(Emoji, 200)), Owner, ["ok-1"]));

        var request = await h.WaitForRequestAsync("emoji-flow");
        Assert.Equal(RequestStatus.Rejected, request.Status);
        Assert.Contains("flowId: 400 characters", request.RejectionReason, StringComparison.Ordinal);
        Assert.True(WellFormed(request.FlowId));
        Assert.True(WellFormed(request.RejectionReason!));
        var completed = Assert.Single(await h.OutboxEventsAsync(request));
        Assert.Equal(RequestStatus.Rejected, completed.Status);
        Assert.Equal(request.FlowId, completed.FlowId);
        Assert.Equal(0u, await h.ErrorQueueDepthAsync());
    }

    [Fact]
    public async Task A_lone_surrogate_in_an_id_Rejects_that_id_alone_with_the_field_named()
    {
        var h = shared.Harness;
        await h.PublishRawAsync(AsciiJson("lone-id", FlowId, Owner, ["ok-1", "ab\uD83Dcd", "ok-2"]));

        var request = await h.WaitForRequestAsync("lone-id");
        Assert.Null(request.Status);
        Assert.Equal(2, request.PendingCount);
        var rejected = Assert.Single(request.Prospects, p => p.Status == ProspectAssignmentStatus.Rejected);
        Assert.Equal("ab\uFFFDcd", rejected.CrmProspectId);
        Assert.Contains("crmProspectIds[1]: contains an unpaired surrogate U+D83D", rejected.ErrorMessage, StringComparison.Ordinal);
        Assert.Equal(0u, await h.ErrorQueueDepthAsync());
    }

    // Not [InlineData]: xUnit's test-case serialization turns a lone surrogate into U+FFFD before the test runs.
    [Fact]
    public Task A_lone_surrogate_in_flowId_Rejects_the_request_with_its_event() =>
        A_lone_surrogate_in_flowId_or_owner_email_Rejects_the_request_with_its_event("lone-flow", "12\uDC00", Owner, "flowId:");

    [Fact]
    public Task A_lone_surrogate_in_the_owner_email_Rejects_the_request_with_its_event() =>
        A_lone_surrogate_in_flowId_or_owner_email_Rejects_the_request_with_its_event(
            "lone-email", FlowId, "own\uD800er@example.com", "flowInstanceOwnerEmail: contains an unpaired surrogate U+D800 at index 3");

    private async Task A_lone_surrogate_in_flowId_or_owner_email_Rejects_the_request_with_its_event(string requestId, string flowId, string email, string reason)
    {
        var h = shared.Harness;
        await h.PublishRawAsync(AsciiJson(requestId, flowId, email, ["ok-1"]));

        var request = await h.WaitForRequestAsync(requestId);
        Assert.Equal(RequestStatus.Rejected, request.Status);
        Assert.Contains(reason, request.RejectionReason, StringComparison.Ordinal);
        Assert.True(WellFormed(request.FlowId) && WellFormed(request.OwnerEmail));
        var completed = Assert.Single(await h.OutboxEventsAsync(request));
        Assert.Equal(RequestStatus.Rejected, completed.Status);
        Assert.Equal(ProspectStatus.Rejected, Assert.Single(completed.Outcomes).Status);
        Assert.Equal(0u, await h.ErrorQueueDepthAsync());
    }

    [Fact]
    public async Task A_lone_surrogate_in_requestId_goes_to_the_error_queue_with_requestId_named()
    {
        var h = shared.Harness;
        var unreadable = h.Ingested.GetValueOrDefault("unreadable");
        var requests = await h.CountRequestsAsync();
        var messageId = await h.PublishRawAsync(AsciiJson("req\uDBFF", FlowId, Owner, ["ok-1"]));

        var error = await h.TakeFromErrorQueueAsync(messageId);
        Assert.Contains("requestId: contains an unpaired surrogate U+DBFF", error.Reason, StringComparison.Ordinal);
        Assert.Equal(requests, await h.CountRequestsAsync());
        await h.WaitForIngestedAsync("unreadable", unreadable + 1);
    }

    [Fact]
    public async Task A_requestId_of_200_emoji_is_Rejected_and_answered_under_its_own_requestId()
    {
        var h = shared.Harness;
        var requestId = string.Concat(Enumerable.Repeat(Emoji, 100)) + "-x"; // 202 UTF-16 units: storable, over the 128 limit
        await h.PublishRawAsync(AsciiJson(requestId, FlowId, Owner, ["ok-1"]));

        var request = await h.WaitForRequestAsync(requestId);
        Assert.Equal(RequestStatus.Rejected, request.Status);
        Assert.Contains("requestId: 202 characters; the limit is 128", request.RejectionReason, StringComparison.Ordinal);
        Assert.Equal(requestId, Assert.Single(await h.OutboxEventsAsync(request)).RequestId);
    }

    /// <summary>True when <paramref name="value"/> encodes to UTF-8 without replacement (no unpaired surrogate), as Npgsql requires.</summary>
    internal static bool WellFormed(string? value)
    {
        try
        {
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetBytes(value ?? string.Empty);
            return true;
        }
        catch (EncoderFallbackException)
        {
            return false;
        }
    }

    /// <summary>
    /// The body as a publisher with an ASCII-only JSON encoder writes it: every character outside printable ASCII as
    /// <c>\uXXXX</c> (UTF-16 code units, so a lone surrogate stays a lone surrogate, as in Python's json.dumps).
    /// </summary>
    internal static string AsciiJson(string? requestId, string? flowId, string? email, IEnumerable<string?>? ids)
    {
        var builder = new StringBuilder("{");
        Field(builder, "requestId", requestId).Append(',');
        Field(builder, "flowId", flowId).Append(',');
        Field(builder, "flowInstanceOwnerEmail", email).Append(",\"crmProspectIds\":");
        if (ids is null)
        {
            builder.Append("null");
        }
        else
        {
            builder.Append('[').AppendJoin(',', ids.Select(id => Quote(id))).Append(']');
        }

        return builder.Append('}').ToString();
    }

    private static StringBuilder Field(StringBuilder builder, string name, string? value) =>
        builder.Append('"').Append(name).Append("\":").Append(Quote(value));

    private static string Quote(string? value)
    {
        if (value is null)
        {
            return "null";
        }

        var builder = new StringBuilder("\"");
        foreach (var c in value)
        {
            if (c is >= ' ' and < (char)0x7F and not '"' and not '\\')
            {
                builder.Append(c);
            }
            else
            {
                builder.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return builder.Append('"').ToString();
    }
}
