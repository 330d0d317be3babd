using System.ComponentModel.DataAnnotations;

namespace Worker.Host.Relay;

/// <summary>Publishing outbox rows as result events (section <c>Relay</c>, env <c>Relay__…</c>).</summary>
public sealed class RelayOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Relay";

    /// <summary>Longest wait between looks at the outbox when no dispatcher in this replica signals (default 1 s).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00", ErrorMessage = "Relay:PollInterval (Relay__PollInterval) must be between 00:00:00.010 and 00:10:00.")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Rows claimed per round (default 100); they are published concurrently.</summary>
    [Range(1, 1000, ErrorMessage = "Relay:BatchSize (Relay__BatchSize) must be 1–1000.")]
    public int BatchSize { get; set; } = 100;

    /// <summary>
    /// Longest wait for the broker to confirm one publish (default 10 s). After it the row waits for a retry; the row's
    /// lock lasts three times this, so no other replica publishes it meanwhile.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00", ErrorMessage = "Relay:PublishTimeout (Relay__PublishTimeout) must be between 00:00:00.100 and 00:05:00.")]
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest wait before retrying a row whose publish failed (default 30 s); the wait doubles from 1 s up to this.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00", ErrorMessage = "Relay:MaxRetryDelay (Relay__MaxRetryDelay) must be between 00:00:00.100 and 01:00:00.")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>At shutdown, how long the relay keeps publishing what is left after the dispatcher stopped (default 5 s).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00", ErrorMessage = "Relay:FlushTimeout (Relay__FlushTimeout) must be between 00:00:00 and 00:05:00.")]
    public TimeSpan FlushTimeout { get; set; } = TimeSpan.FromSeconds(5);
}
