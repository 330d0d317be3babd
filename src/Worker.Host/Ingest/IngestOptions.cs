using System.ComponentModel.DataAnnotations;

namespace Worker.Host.Ingest;

/// <summary>Ingest settings (section <c>Ingest</c>, environment <c>Ingest__MaxProspectsPerRequest</c> etc.).</summary>
public sealed class IngestOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Ingest";

    /// <summary>The command queue (bound to exchange <c>Worker.Contracts:AssignProspectsToFlow</c>); its error queue is <c>assign-prospects-to-flow_error</c>.</summary>
    public const string QueueName = "assign-prospects-to-flow";

    /// <summary>Most CRM prospect ids one request may carry (default 10,000, the wire contract's limit); more rejects the request.</summary>
    [Range(1, 1_000_000, ErrorMessage = "Ingest:MaxProspectsPerRequest (Ingest__MaxProspectsPerRequest) must be 1–1000000.")]
    public int MaxProspectsPerRequest { get; set; } = 10_000;

    /// <summary>Most messages written in one Postgres transaction (default 256); concurrent deliveries share it.</summary>
    [Range(1, 10_000, ErrorMessage = "Ingest:MaxMessagesPerTransaction (Ingest__MaxMessagesPerTransaction) must be 1–10000.")]
    public int MaxMessagesPerTransaction { get; set; } = 256;

    /// <summary>
    /// Retries in place of a message whose write failed because Postgres is unreachable or overloaded (default 5:
    /// 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s with the default intervals). After the last one the message goes back to the queue
    /// (Ready, never to the error queue) and the endpoint's kill switch stops consuming for <see cref="OutagePause"/>.
    /// </summary>
    [Range(0, 100, ErrorMessage = "Ingest:TransientRetryLimit (Ingest__TransientRetryLimit) must be 0–100.")]
    public int TransientRetryLimit { get; set; } = 5;

    /// <summary>
    /// How long the command endpoint stops consuming once writes fail because Postgres is unreachable (default 30 s);
    /// then it starts again, and stops again at the first such failure. Messages wait Ready in the queue meanwhile,
    /// for an outage of any length. MassTransit's kill switch needs at least 1 s.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "Ingest:OutagePause (Ingest__OutagePause) must be 1 s – 1 h.")]
    public TimeSpan OutagePause { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>First retry interval after a transient database error (default 200 ms); doubles up to <see cref="RetryMaxInterval"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "01:00:00", ErrorMessage = "Ingest:RetryMinInterval (Ingest__RetryMinInterval) must be 1 ms – 1 h.")]
    public TimeSpan RetryMinInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest retry interval after a transient database error (default 30 s).</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "01:00:00", ErrorMessage = "Ingest:RetryMaxInterval (Ingest__RetryMaxInterval) must be 1 ms – 1 h.")]
    public TimeSpan RetryMaxInterval { get; set; } = TimeSpan.FromSeconds(30);
}
