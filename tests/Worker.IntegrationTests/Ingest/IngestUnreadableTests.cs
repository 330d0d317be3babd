namespace Worker.IntegrationTests.Ingest;

/// <summary>
/// Issue 11 case 9 (ingest part): bodies the JSON reader cannot turn into an AssignProspectsToFlow go to the error
/// queue with a reason naming the field, and are counted as <c>unreadable</c> in flow_assignment.messages.ingested.
/// The tests share one host (<see cref="IngestHostFixture"/>): counters are read as differences.
/// </summary>
public sealed class IngestUnreadableTests(IngestHostFixture shared, ITestOutputHelper output) : IClassFixture<IngestHostFixture>, IDisposable
{
    private readonly IDisposable attached = shared.Attach(output);

    /// <inheritdoc />
    public void Dispose() => attached.Dispose();

    [Fact]
    public async Task A_flowId_sent_as_a_number_goes_to_the_error_queue_with_the_field_named_and_is_counted_unreadable()
    {
        var h = shared.Harness;
        var unreadable = h.Ingested.GetValueOrDefault("unreadable");
        var requests = await h.CountRequestsAsync();
        const string body = """{"requestId":"wrong-type","flowId":1695493301223590792,"flowInstanceOwnerEmail":"owner@example.com","crmProspectIds":["a1"]}""";
        var messageId = await h.PublishRawAsync(body);

        var error = await h.TakeFromErrorQueueAsync(messageId);
        Assert.Equal(body, error.Body);
        Assert.Contains("$.flowId", error.Reason, StringComparison.Ordinal);
        await h.WaitForIngestedAsync("unreadable", unreadable + 1);
        Assert.Equal(requests, await h.CountRequestsAsync());
    }

    [Fact]
    public async Task An_id_sent_as_an_object_names_its_index_in_the_error_queue_header()
    {
        var h = shared.Harness;
        var unreadable = h.Ingested.GetValueOrDefault("unreadable");
        var messageId = await h.PublishRawAsync("""{"requestId":"wrong-id","flowId":"1","flowInstanceOwnerEmail":"owner@example.com","crmProspectIds":["a1",{"id":2}]}""");

        var error = await h.TakeFromErrorQueueAsync(messageId);
        Assert.Contains("$.crmProspectIds[1]", error.Reason, StringComparison.Ordinal);
        await h.WaitForIngestedAsync("unreadable", unreadable + 1);
    }

    [Fact]
    public async Task A_body_starting_with_a_byte_order_mark_is_counted_unreadable()
    {
        var h = shared.Harness;
        var unreadable = h.Ingested.GetValueOrDefault("unreadable");
        var requests = await h.CountRequestsAsync();
        var messageId = await h.PublishRawAsync("\uFEFF" + """{"requestId":"bom","flowId":"1","flowInstanceOwnerEmail":"owner@example.com","crmProspectIds":["a1"]}""");

        var error = await h.TakeFromErrorQueueAsync(messageId);
        Assert.False(string.IsNullOrEmpty(error.Reason));
        await h.WaitForIngestedAsync("unreadable", unreadable + 1);
        Assert.Equal(requests, await h.CountRequestsAsync());
    }
}
