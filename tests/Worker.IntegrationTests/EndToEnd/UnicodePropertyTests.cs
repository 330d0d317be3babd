using System.Globalization;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Microsoft.EntityFrameworkCore;
using RabbitMQ.Client;
using Worker.Contracts;
using Worker.IntegrationTests.Dispatch;
using Worker.IntegrationTests.Ingest;
using Worker.Persistence.Entities;

namespace Worker.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 11 case 1, as a property over random Unicode: requests whose requestId, flowId, owner email and ids mix ASCII,
/// astral-plane characters, lone surrogates, combining marks, NUL and other control characters, RTL and zero-width
/// marks and byte order marks are published as plain JSON (non-ASCII as <c>\uXXXX</c>, as Python's json.dumps writes)
/// through real RabbitMQ, the worker, Postgres and the Gong simulator. Property: every message gives exactly one
/// FlowAssignmentCompleted, except the contract's one error-queue case here (no usable requestId: empty, over 256
/// UTF-16 units, NUL or an unpaired surrogate), which gives exactly one error-queue message naming requestId; no row
/// is left open and nothing is sent to Gong twice. FsCheck generates the messages from a fixed seed (reproducible).
/// </summary>
public sealed class UnicodePropertyTests(ITestOutputHelper output)
{
    private const int Messages = 120;
    private const ulong Seed = 20261130;
    private const string ErrorQueue = "assign-prospects-to-flow_error";

    [Fact]
    public async Task Every_message_of_random_Unicode_gives_exactly_one_event_or_one_documented_error_queue_message()
    {
        var samples = MessageGen().Sample(Messages, new Rnd(Seed), 30); // count, seed, size
        // Ids get the message's number in front so no two requests ask for the same prospect (a prospect asked for again
        // after its first request completed is legitimately sent again, which the duplicate counter below would count).
        var messages = samples.Select((m, i) => m with
        {
            RequestId = m.RequestId is { } suffix ? $"prop-{i:D3}-{suffix}" : null,
            Ids = m.Ids?.Select(id => id is null ? null : $"m{i:D3}-{id}").ToList(),
        }).ToList();

        await using var world = await EndToEndWorld.StartAsync(settings: ["--Dispatch:MaxBatchDelay=00:00:00.100"], output: output);
        var factory = new ConnectionFactory { Uri = world.VirtualHost.AmqpUri };
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true)))
        {
            foreach (var message in messages)
            {
                var properties = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent };
                await channel.BasicPublishAsync(EndToEndWorld.CommandExchange, string.Empty, mandatory: true, properties, Encoding.UTF8.GetBytes(message.Json));
            }
        }

        var answerable = messages.Where(m => Answerable(m.RequestId)).ToList();
        var unanswerable = messages.Except(answerable).ToList();
        Assert.True(answerable.Count > Messages / 2 && unanswerable.Count > 0, $"the sample covers both cases ({answerable.Count} answerable):\n{string.Join('\n', unanswerable.Take(8).Select(m => m.Json))}");

        await world.WaitForEventsAsync(answerable.Select(m => m.RequestId!), TimeSpan.FromSeconds(120));
        var errors = await TakeErrorQueueAsync(world, unanswerable.Count);

        foreach (var message in answerable)
        {
            var received = world.Events.For(message.RequestId!);
            Assert.True(received.Count == 1, $"{received.Count} events for message {message.Json}");
            var completed = received[0].Message;
            var request = await world.RequestAsync(message.RequestId!);
            Assert.Equal(request.Status, completed.Status);
            Assert.Equal(request.ProspectCount, completed.Outcomes.Count);
            Assert.All(completed.Outcomes, o => Assert.True(IngestUnicodeTests.WellFormed(o.CrmProspectId), $"outcome id of {message.Json}"));
        }

        Assert.Equal(unanswerable.Select(m => m.Json).Order(StringComparer.Ordinal), errors.Select(e => e.Body).Order(StringComparer.Ordinal));
        Assert.All(errors, e => Assert.Contains("requestId", e.Reason, StringComparison.Ordinal));
        Assert.Empty(world.Events.Unreadable);
        Assert.Equal(answerable.Count, world.Events.All.Count);

        await using var db = world.Database.CreateDbContext();
        Assert.Equal(0, await db.ProspectAssignments.CountAsync(p => p.Status == ProspectAssignmentStatus.Pending || p.Status == ProspectAssignmentStatus.InFlight));
        Assert.Equal(answerable.Count, await db.AssignmentRequests.CountAsync(r => r.CompletedAt != null));
        var stats = world.Simulator.State.GetStats();
        Assert.Equal(0, stats.DuplicateOfApiAssignmentAttempts);
        Assert.Equal(0, stats.CallsWithDuplicateIds);
    }

    /// <summary>The contract's rule for a requestId the worker can store and answer to (README, wire contract).</summary>
    private static bool Answerable(string? requestId) =>
        !string.IsNullOrEmpty(requestId) && requestId.Length <= 256 && !requestId.Contains('\0', StringComparison.Ordinal)
        && IngestUnicodeTests.WellFormed(requestId);

    private static async Task<List<ErrorQueueMessage>> TakeErrorQueueAsync(EndToEndWorld world, int expected)
    {
        var taken = new List<ErrorQueueMessage>();
        await using var connection = await new ConnectionFactory { Uri = world.VirtualHost.AmqpUri }.CreateConnectionAsync();
        await Poll.UntilAsync(async () =>
        {
            await using var channel = await connection.CreateChannelAsync();
            try
            {
                while (await channel.BasicGetAsync(ErrorQueue, autoAck: true) is { } result)
                {
                    var headers = (result.BasicProperties.Headers ?? new Dictionary<string, object?>())
                        .ToDictionary(h => h.Key, h => h.Value is byte[] bytes ? Encoding.UTF8.GetString(bytes) : h.Value?.ToString(), StringComparer.Ordinal);
                    taken.Add(new ErrorQueueMessage(Encoding.UTF8.GetString(result.Body.Span), headers));
                }
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                return false; // not declared before the first fault
            }

            return taken.Count >= expected;
        }, $"{expected} message(s) on {ErrorQueue}");
        return taken;
    }

    private sealed record Sample(string? RequestId, string? FlowId, string? Email, IReadOnlyList<string?>? Ids)
    {
        public string Json => IngestUnicodeTests.AsciiJson(RequestId, FlowId, Email, Ids);
    }

    private static Gen<Sample> MessageGen()
    {
        var text = TextGen(invalidUtf16: true);
        var requestIdSuffix = Gen.Frequency(
            (12, TextGen(invalidUtf16: false)),
            (2, LoneSurrogate().Select(s => "x" + s)),
            (1, Gen.Constant(string.Concat(Enumerable.Repeat(char.ConvertFromUtf32(0x1F600), 70)))), // 140 units: stored, Rejected
            (1, Gen.Constant(string.Concat(Enumerable.Repeat(char.ConvertFromUtf32(0x1F600), 130)))), // 260 units: unusable
            (1, Gen.Constant("nul\0")));
        var requestId = Gen.Frequency((20, requestIdSuffix.Select(s => (string?)s)), (1, Gen.Constant<string?>(null)));
        var flowId = Gen.Frequency(
            (10, Gen.Elements("1695493301223590792", "42", "7")),
            (3, text),
            (1, Gen.Constant(string.Concat(Enumerable.Repeat(char.ConvertFromUtf32(0x1F600), 200)))),
            (1, Gen.Constant<string>(null!)));
        var email = Gen.Frequency(
            (10, Gen.Elements("owner@example.com", "Owner@Example.COM", "ünïcödé@example.com")),
            (3, text.Select(t => t + "@example.com")),
            (2, text),
            (1, Gen.Constant<string>(null!)));
        var id = Gen.Frequency(
            (6, Gen.Choose(1, 500).Select(i => "ok-" + i.ToString(CultureInfo.InvariantCulture))),
            (6, text),
            (1, Gen.Constant(string.Concat(Enumerable.Repeat(char.ConvertFromUtf32(0x1F600), 300)))),
            (1, Gen.Constant<string>(null!)));
        var ids = Gen.Frequency(
            (12, Gen.Choose(1, 8).SelectMany(n => id.Select(x => (string?)x).ListOf(n)).Select(l => (IReadOnlyList<string?>?)l.ToList())),
            (1, Gen.Constant<IReadOnlyList<string?>?>(null)));
        return requestId.SelectMany(r => flowId, (r, f) => (r, f))
            .SelectMany(rf => email, (rf, e) => (rf.r, rf.f, e))
            .SelectMany(rfe => ids, (rfe, i) => new Sample(rfe.r, rfe.f, rfe.e, i));
    }

    /// <summary>Text of 0–24 pieces, each a character (or pair) from one of the awkward classes; lone surrogates and NUL only when <paramref name="invalidUtf16"/>.</summary>
    private static Gen<string> TextGen(bool invalidUtf16)
    {
        var piece = Gen.Frequency(
            (8, Gen.Choose('a', 'z').Select(c => ((char)c).ToString())),
            (2, Gen.Choose('0', '9').Select(c => ((char)c).ToString())),
            (3, Gen.Choose(0x1F300, 0x1FAFF).Select(char.ConvertFromUtf32)), // emoji: astral plane, a surrogate pair
            (2, Gen.Choose(0x20000, 0x2A6DF).Select(char.ConvertFromUtf32)), // CJK extension B: astral plane
            (2, Gen.Choose(0x0300, 0x036F).Select(c => ((char)c).ToString())), // combining marks
            (invalidUtf16 ? 1 : 0, LoneSurrogate()),
            (invalidUtf16 ? 1 : 0, Gen.Constant("\0")),
            (1, Gen.Choose(0x01, 0x1F).Select(c => ((char)c).ToString())), // control characters
            (2, Gen.Elements("\u200F", "\u202E", "\u061C", "\u200D", "\uFEFF", "\u00A0", " ")), // RTL marks, ZWJ, BOM, spaces
            (1, Gen.Elements("é", "e\u0301", "👩‍👩‍👧", "🇫🇷", "ﷺ")));
        return Gen.Choose(0, 24).SelectMany(n => piece.ListOf(n)).Select(p => string.Concat(p));
    }

    private static Gen<string> LoneSurrogate() =>
        Gen.Frequency((1, Gen.Choose(0xD800, 0xDBFF)), (1, Gen.Choose(0xDC00, 0xDFFF))).Select(c => ((char)c).ToString());
}
