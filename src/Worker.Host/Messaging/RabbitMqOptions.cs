using System.ComponentModel.DataAnnotations;

namespace Worker.Host.Messaging;

/// <summary>RabbitMQ connection settings (section <c>RabbitMq</c>, env <c>RabbitMq__Host</c> etc.).</summary>
public sealed class RabbitMqOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "RabbitMq";

    /// <summary>Broker host name or address.</summary>
    [Required(ErrorMessage = "RabbitMq:Host (RabbitMq__Host) is required.")]
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>AMQP port (default 5672).</summary>
    [Range(1, 65535, ErrorMessage = "RabbitMq:Port (RabbitMq__Port) must be 1–65535.")]
    public int Port { get; set; } = 5672;

    /// <summary>Virtual host (default "/").</summary>
    [Required(ErrorMessage = "RabbitMq:VirtualHost (RabbitMq__VirtualHost) is required.")]
    public string VirtualHost { get; set; } = "/";

    /// <summary>User name.</summary>
    [Required(ErrorMessage = "RabbitMq:Username (RabbitMq__Username) is required.")]
    public string Username { get; set; } = "guest";

    /// <summary>Password (never logged). No default: the local one lives in appsettings.Development.json, production's in the Secret.</summary>
    [Required(ErrorMessage = "RabbitMq:Password (RabbitMq__Password) is required.")]
    public string Password { get; set; } = string.Empty;

    /// <summary>Declare the command queue as a quorum queue (survives node loss in a cluster; works on one node).</summary>
    public bool UseQuorumQueues { get; set; }

    /// <summary>Messages the broker may deliver ahead of acknowledgement, per consumer (default 64).</summary>
    [Range(1, 10_000, ErrorMessage = "RabbitMq:PrefetchCount (RabbitMq__PrefetchCount) must be 1–10000.")]
    public int PrefetchCount { get; set; } = 64;
}
