using MassTransit;
using Worker.Testing;

namespace Worker.IntegrationTests.Foundation;

public sealed class MessagingTests
{
    [Fact]
    public async Task A_message_published_through_RabbitMQ_is_consumed_by_MassTransit()
    {
        var services = await TestServices.GetAsync();
        await using var vhost = await services.CreateVirtualHostAsync();
        var received = new TaskCompletionSource<Ping>(TaskCreationOptions.RunContinuationsAsynchronously);

        var bus = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(vhost.Host, (ushort)vhost.Port, vhost.Name, h =>
            {
                h.Username(vhost.Username);
                h.Password(vhost.Password);
            });
            cfg.ReceiveEndpoint("foundation-ping", e => e.Handler<Ping>(context =>
            {
                received.TrySetResult(context.Message);
                return Task.CompletedTask;
            }));
        });
        await bus.StartAsync();
        try
        {
            await bus.Publish(new Ping("hello", 42));
            var message = await received.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(new Ping("hello", 42), message);
        }
        finally
        {
            await bus.StopAsync();
        }
    }

    public sealed record Ping(string Text, int Number);
}
