using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Worker.Host.Operations;

/// <summary>
/// The worker's own instruments (meter <see cref="MeterName"/>), exported on <c>/metrics</c> in Prometheus
/// format through OpenTelemetry. Every stage records here; names follow OpenTelemetry conventions
/// (dots, units as UCUM) under the product namespace <c>flow_assignment.</c>, so Prometheus shows
/// <c>flow_assignment_…</c> (plus <c>_total</c> on counters and the unit suffix, e.g. <c>_seconds</c>). Attributes follow
/// OpenTelemetry semantic conventions where one exists (<c>http.response.status_code</c>, <c>error.type</c>); an attribute
/// with no value is left out rather than set to a placeholder. Every series is listed in the README.
/// </summary>
public sealed class WorkerMetrics : IDisposable
{
    /// <summary>Name of the meter to enable in OpenTelemetry.</summary>
    public const string MeterName = "FlowAssignment.Worker";

    private readonly Meter meter;
    private readonly Counter<long> messagesIngested;
    private readonly Counter<long> prospectOutcomes;
    private readonly Counter<long> gongCalls;
    private readonly Histogram<double> gongCallDuration;
    private readonly Histogram<int> batchFill;
    private readonly Histogram<double> rateGateWait;
    private readonly Counter<long> reconciliations;
    private readonly Counter<long> eventsPublished;
    private readonly Histogram<double> outboxLag;
    private readonly Counter<long> outboxDeadLettered;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public WorkerMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        meter = meterFactory.Create(MeterName);
        messagesIngested = meter.CreateCounter<long>("flow_assignment.messages.ingested", "{message}", "AssignProspectsToFlow messages stored, by result (accepted, rejected, duplicate, conflict, unreadable).");
        prospectOutcomes = meter.CreateCounter<long>("flow_assignment.prospect.outcomes", "{prospect}", "Prospects that reached a final outcome, by status (Assigned, NotAssigned, Failed, Rejected).");
        gongCalls = meter.CreateCounter<long>("flow_assignment.gong.calls", "{call}", "HTTP calls to Gong, by endpoint (assign, lookup), outcome_class and http.response.status_code (error.type=no_response when no response arrived). 429s are the calls with status 429.");
        gongCallDuration = meter.CreateHistogram<double>("flow_assignment.gong.call.duration", "s", "Duration of HTTP calls to Gong, by endpoint.");
        batchFill = meter.CreateHistogram<int>("flow_assignment.batch.fill", "{prospect}", "Prospects per assign call (of MaxBatchSize, default 200).");
        rateGateWait = meter.CreateHistogram<double>("flow_assignment.rate_gate.wait", "s", "Time spent waiting for a shared rate-gate slot before a Gong call.");
        reconciliations = meter.CreateCounter<long>("flow_assignment.gong.reconciliations", "{prospect}", "Prospects looked up after an outcome-unknown call, by result (found, absent, lookup_failed).");
        eventsPublished = meter.CreateCounter<long>("flow_assignment.outbox.published", "{message}", "Outbox rows published to RabbitMQ, by result (published, failed).");
        outboxLag = meter.CreateHistogram<double>("flow_assignment.outbox.lag", "s", "Time from an outbox row's commit to its confirmed publish.");
        outboxDeadLettered = meter.CreateCounter<long>("flow_assignment.outbox.dead_lettered", "{message}", "Outbox rows given up because their payload cannot be read as their message type: never published (view ops_outbox_dead_lettered).");
    }

    /// <summary>Counts stored messages; <paramref name="result"/> is accepted, rejected, duplicate, conflict or unreadable.</summary>
    public void MessageIngested(string result, long count = 1) => messagesIngested.Add(count, new KeyValuePair<string, object?>("result", result));

    /// <summary>Counts prospects reaching a final <paramref name="status"/>.</summary>
    public void ProspectOutcomes(string status, long count) => prospectOutcomes.Add(count, new KeyValuePair<string, object?>("status", status));

    /// <summary>Records one HTTP call to Gong.</summary>
    /// <param name="endpoint">assign or lookup.</param>
    /// <param name="outcomeClass">The classification (Answered, SafeToResend, OutcomeUnknown, RefusedForBatch, RefusedForAll).</param>
    /// <param name="httpStatus">HTTP status, or null when no response arrived.</param>
    /// <param name="duration">Wall time of the call.</param>
    public void GongCall(string endpoint, string outcomeClass, int? httpStatus, TimeSpan duration)
    {
        var tags = new TagList
        {
            { "endpoint", endpoint },
            { "outcome_class", outcomeClass },
        };
        if (httpStatus is { } status)
        {
            tags.Add("http.response.status_code", status);
        }
        else
        {
            tags.Add("error.type", "no_response");
        }

        gongCalls.Add(1, tags);
        gongCallDuration.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("endpoint", endpoint));
    }

    /// <summary>Records the number of prospects sent in one assign call.</summary>
    public void BatchFill(int prospects) => batchFill.Record(prospects);

    /// <summary>Records a wait for a rate-gate slot.</summary>
    public void RateGateWait(TimeSpan wait) => rateGateWait.Record(wait.TotalSeconds);

    /// <summary>Counts reconciled prospects; <paramref name="result"/> is found, absent or lookup_failed.</summary>
    public void Reconciled(string result, long count) => reconciliations.Add(count, new KeyValuePair<string, object?>("result", result));

    /// <summary>Records an outbox publish attempt and, when published, the lag since the row was written.</summary>
    public void OutboxPublished(bool published, TimeSpan? lag)
    {
        eventsPublished.Add(1, new KeyValuePair<string, object?>("result", published ? "published" : "failed"));
        if (published && lag is { } value)
        {
            outboxLag.Record(value.TotalSeconds);
        }
    }

    /// <summary>Counts outbox rows the relay marked failed for good (unreadable payload).</summary>
    public void OutboxDeadLettered(long count) => outboxDeadLettered.Add(count);

    /// <inheritdoc />
    public void Dispose() => meter.Dispose();
}
