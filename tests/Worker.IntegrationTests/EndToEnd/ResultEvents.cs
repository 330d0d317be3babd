using System.Collections.Concurrent;
using System.Text.Json;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Worker.Contracts;

namespace Worker.IntegrationTests.EndToEnd;

/// <summary>
/// A downstream system's view of the results: a raw RabbitMQ.Client consumer on its own exclusive queue bound to the
/// fanout exchange <c>Worker.Contracts:FlowAssignmentCompleted</c>, reading the MassTransit envelope as plain JSON.
/// </summary>
internal sealed class ResultEvents : IAsyncDisposable
{
    public const string Exchange = "Worker.Contracts:FlowAssignmentCompleted";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly ConcurrentQueue<ReceivedEvent> received = new();
    private readonly ConcurrentQueue<string> unreadable = new();
    private IConnection? connection;
    private IChannel? channel;

    /// <summary>Every delivery, in arrival order (duplicates included).</summary>
    public IReadOnlyList<ReceivedEvent> All => [.. received];

    /// <summary>Deliveries whose body was not a readable envelope (should stay empty).</summary>
    public IReadOnlyList<string> Unreadable => [.. unreadable];

    public static async Task<ResultEvents> StartAsync(Uri amqpUri)
    {
        var events = new ResultEvents();
        var factory = new ConnectionFactory { Uri = amqpUri, ClientProvidedName = "e2e-result-listener" };
        events.connection = await factory.CreateConnectionAsync();
        events.channel = await events.connection.CreateChannelAsync();
        // Same declaration as MassTransit's (durable fanout), so whichever side comes first the other agrees.
        await events.channel.ExchangeDeclareAsync(Exchange, ExchangeType.Fanout, durable: true, autoDelete: false);
        var queue = await events.channel.QueueDeclareAsync(string.Empty, durable: false, exclusive: true, autoDelete: true);
        await events.channel.QueueBindAsync(queue.QueueName, Exchange, string.Empty);
        var consumer = new AsyncEventingBasicConsumer(events.channel);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            events.Read(delivery);
            return Task.CompletedTask;
        };
        await events.channel.BasicConsumeAsync(queue.QueueName, autoAck: true, consumer);
        return events;
    }

    /// <summary>The deliveries for <paramref name="requestId"/>.</summary>
    public IReadOnlyList<ReceivedEvent> For(string requestId) => [.. received.Where(e => e.Message.RequestId == requestId)];

    /// <summary>The one event for <paramref name="requestId"/>; fails when there is none or more than one.</summary>
    public ReceivedEvent Single(string requestId) => Assert.Single(For(requestId));

    public bool HasAll(IEnumerable<string> requestIds) => requestIds.All(id => received.Any(e => e.Message.RequestId == id));

    public async ValueTask DisposeAsync()
    {
        if (channel is not null)
        {
            await channel.CloseAsync();
            await channel.DisposeAsync();
        }

        if (connection is not null)
        {
            await connection.CloseAsync();
            await connection.DisposeAsync();
        }
    }

    private void Read(BasicDeliverEventArgs delivery)
    {
        var body = delivery.Body.ToArray();
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            var messageId = Guid.Parse(root.GetProperty("messageId").GetString()!);
            var message = root.GetProperty("message").Deserialize<FlowAssignmentCompleted>(Json)!;
            received.Enqueue(new ReceivedEvent(messageId, delivery.BasicProperties.MessageId, delivery.BasicProperties.ContentType, message));
        }
        catch (Exception e) when (e is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
        {
            unreadable.Enqueue($"{e.Message}: {System.Text.Encoding.UTF8.GetString(body)}");
        }
    }
}

/// <summary>One result event as delivered: the envelope's messageId, the AMQP message-id and content type, the message.</summary>
internal sealed record ReceivedEvent(Guid MessageId, string? AmqpMessageId, string? ContentType, FlowAssignmentCompleted Message);
