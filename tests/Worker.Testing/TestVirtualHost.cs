namespace Worker.Testing;

/// <summary>A RabbitMQ vhost owned by one test; deleted (with its queues and exchanges) on dispose.</summary>
public sealed class TestVirtualHost : IAsyncDisposable
{
    private readonly TestServices services;

    internal TestVirtualHost(TestServices services, string name)
    {
        this.services = services;
        Name = name;
    }

    /// <summary>The vhost name.</summary>
    public string Name { get; }

    /// <summary>Broker host.</summary>
    public string Host => services.RabbitMqUri.Host;

    /// <summary>AMQP port.</summary>
    public int Port => services.RabbitMqUri.IsDefaultPort ? 5672 : services.RabbitMqUri.Port;

    /// <summary>Broker user.</summary>
    public string Username => services.RabbitMqUsername;

    /// <summary>Broker password.</summary>
    public string Password => services.RabbitMqPassword;

    /// <summary>AMQP URI of this vhost.</summary>
    public Uri AmqpUri => new($"amqp://{Uri.EscapeDataString(Username)}:{Uri.EscapeDataString(Password)}@{Host}:{Port}/{Uri.EscapeDataString(Name)}");

    /// <summary>The worker's <c>RabbitMq:*</c> settings for this vhost, for an in-memory configuration source.</summary>
    public IEnumerable<KeyValuePair<string, string?>> ToWorkerConfiguration() =>
    [
        new("RabbitMq:Host", Host),
        new("RabbitMq:Port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        new("RabbitMq:VirtualHost", Name),
        new("RabbitMq:Username", Username),
        new("RabbitMq:Password", Password),
    ];

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await services.DeleteVirtualHostAsync(Name).ConfigureAwait(false);
}
