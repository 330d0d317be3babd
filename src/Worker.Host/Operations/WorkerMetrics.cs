using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Worker.Host.Operations;

/// <summary>
/// The worker's own instruments (meter <see cref="MeterName"/>), exported on <c>/metrics</c> in Prometheus
/// format through OpenTelemetry. Most stages record here; a few types create their own instruments on the same meter
/// (<c>PostgresRateGate</c>, <c>GongBatchLimit</c>, <c>DatabaseGauges</c>, <c>PriorityLaneGauges</c>). Names follow OpenTelemetry conventions
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
    private readonly Counter<long> messagesIngested, movedToErrorQueue, prospectOutcomes, priorityProspectsCompleted, priorityBatches,
        gongCalls, reconciliations, eventsPublished, outboxDeadLettered;
    private readonly Histogram<double> gongCallDuration, rateGateWait, outboxLag;
    private readonly Histogram<int> batchFill;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public WorkerMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        meter = meterFactory.Create(MeterName);
        messagesIngested = meter.CreateCounter<long>("flow_assignment.messages.ingested", "{message}", "AssignProspectsToFlow messages stored, by result (accepted, rejected, duplicate, conflict, unreadable).");
        prospectOutcomes = meter.CreateCounter<long>("flow_assignment.prospect.outcomes", "{prospect}", "Prospects that reached a final outcome, by status (Assigned, NotAssigned, Failed, Rejected).");
        gongCalls = meter.CreateCounter<long>("flow_assignment.gong.calls", "{call}", "HTTP calls to Gong, by endpoint (assign, lookup), outcome_class and http.response.status_code (error.type=no_response when no response arrived). 429s are the calls with status 429.");
        gongCallDuration = meter.CreateHistogram("flow_assignment.gong.call.duration", "s", "Duration of HTTP calls to Gong, by endpoint.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = GongCallDurationBuckets });
        batchFill = meter.CreateHistogram("flow_assignment.batch.fill", "{prospect}", "Prospects per assign call (of MaxBatchSize, default 200).",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = BatchFillBuckets });
        rateGateWait = meter.CreateHistogram("flow_assignment.rate_gate.wait", "s", "Time spent waiting for a shared rate-gate slot before a Gong call.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = RateGateWaitBuckets });
        reconciliations = meter.CreateCounter<long>("flow_assignment.gong.reconciliations", "{prospect}", "Prospects looked up after an outcome-unknown call, by result (found, absent, lookup_failed).");
        eventsPublished = meter.CreateCounter<long>("flow_assignment.outbox.published", "{message}", "Outbox rows published to RabbitMQ, by result (published, failed).");
        outboxLag = meter.CreateHistogram("flow_assignment.outbox.lag", "s", "Time from an outbox row's commit to its confirmed publish.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = OutboxLagBuckets });
        movedToErrorQueue = meter.CreateCounter<long>("flow_assignment.messages.moved_to_error_queue", "{message}",
            "AssignProspectsToFlow messages moved to the error queue, by reason (unreadable, unusable_request_id, request_id_conflict, other).");
        priorityProspectsCompleted = meter.CreateCounter<long>("flow_assignment.priority.prospects_completed", "{prospect}",
            "Prospects sent to Gong that reached a final outcome (Assigned, NotAssigned, Failed), by priority (high, normal, bulk): throughput per lane.");
        priorityBatches = meter.CreateCounter<long>("flow_assignment.priority.batches", "{batch}",
            "Batches claimed, by priority: the batch's most urgent row's lane (high, normal, bulk). The bulk share is bulk / all.");
        outboxDeadLettered = meter.CreateCounter<long>("flow_assignment.outbox.dead_lettered", "{message}", "Outbox rows given up because their payload cannot be read as their message type: never published (view ops_outbox_dead_lettered).");
    }

    /// <summary>Bucket bounds of <c>flow_assignment_gong_call_duration_seconds</c> (seconds, 0.05 to 120: Gong reads the prospects from the CRM, and the per-attempt timeout is 90 s).</summary>
    public static IReadOnlyList<double> GongCallDurationBuckets { get; } = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 90, 120];

    /// <summary>Bucket bounds of <c>flow_assignment_batch_fill</c> (prospects per assign call, 1 to 200; 199/200 tell a full batch from an almost full one).</summary>
    public static IReadOnlyList<int> BatchFillBuckets { get; } = [1, 10, 50, 100, 150, 190, 199, 200];

    /// <summary>Bucket bounds of <c>flow_assignment_rate_gate_wait_seconds</c> (seconds, 0.01 to 60; <c>Gong:MaxGateWait</c> is 30 s by default).</summary>
    public static IReadOnlyList<double> RateGateWaitBuckets { get; } = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    /// <summary>Bucket bounds of <c>flow_assignment_outbox_lag_seconds</c> (seconds, 0.1 to 600).</summary>
    public static IReadOnlyList<double> OutboxLagBuckets { get; } = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

    /// <summary>Counts stored messages; <paramref name="result"/> is accepted, rejected, duplicate, conflict or unreadable.</summary>
    public void MessageIngested(string result, long count = 1) => messagesIngested.Add(count, new KeyValuePair<string, object?>("result", result));

    /// <summary>
    /// Counts prospects reaching a final <paramref name="status"/> with <paramref name="errorCode"/> as the <c>error_code</c>
    /// attribute, mapped to the bounded set of <see cref="OutcomeErrorCodes.Bounded"/> (left out when null).
    /// </summary>
    /// <param name="status">Assigned, NotAssigned, Failed or Rejected.</param>
    /// <param name="errorCode">The prospect's error code (Gong's or the worker's), or null.</param>
    /// <param name="count">Prospects.</param>
    public void ProspectOutcomes(string status, string? errorCode, long count)
    {
        var tags = new TagList { { "status", status } };
        if (OutcomeErrorCodes.Bounded(errorCode) is { } code)
        {
            tags.Add("error_code", code);
        }

        prospectOutcomes.Add(count, tags);
    }

    /// <summary>
    /// Creates, at 0, the counter series the alerts read with <c>increase()</c>: Prometheus counts nothing for a series
    /// whose first sample is already above 0, so without this the first Failed batch after a start (or the first message
    /// in the error queue) would never alert. Series: <c>prospect_outcomes_total{status="Failed"}</c> for each error code a
    /// Failed prospect can carry, <c>messages_moved_to_error_queue_total</c> for each reason, and the assign 429s.
    /// Call once the metrics exporter listens (measurements made before are dropped).
    /// </summary>
    public void StartAlertedSeriesAtZero()
    {
        foreach (var code in FailedErrorCodes)
        {
            ProspectOutcomes("Failed", code, 0);
        }

        foreach (var reason in new[] { ErrorQueueReasons.Unreadable, ErrorQueueReasons.UnusableRequestId, ErrorQueueReasons.RequestIdConflict, ErrorQueueReasons.Other })
        {
            movedToErrorQueue.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }

        outboxDeadLettered.Add(0);

        // The same attributes, value types included, as GongCall records for a 429 (the rate gate treats it as safe to resend).
        gongCalls.Add(0, new TagList { { "endpoint", "assign" }, { "outcome_class", "SafeToResend" }, { "http.response.status_code", 429 } });
    }

    /// <summary>Error codes of Failed prospects (docs/DESIGN.md), plus <see cref="OutcomeErrorCodes.Other"/>.</summary>
    public static IReadOnlyList<string> FailedErrorCodes { get; } =
        ["Forbidden", "FlowNotFound", "BadRequest", "MissingFromResponse", "RetriesExhausted", OutcomeErrorCodes.Other];

    /// <summary>Counts a message moved to the error queue; <paramref name="reason"/> is one of <see cref="ErrorQueueReasons"/>.</summary>
    public void MovedToErrorQueue(string reason) => movedToErrorQueue.Add(1, new KeyValuePair<string, object?>("reason", reason));

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

    /// <summary>Counts <paramref name="count"/> prospects of lane <paramref name="priority"/> (high, normal, bulk) that
    /// reached a final outcome after a call.</summary>
    public void PriorityProspectsCompleted(string priority, long count) =>
        priorityProspectsCompleted.Add(count, new KeyValuePair<string, object?>("priority", priority));

    /// <summary>Counts one claimed batch of lane <paramref name="priority"/> (high, normal, bulk).</summary>
    public void PriorityBatchClaimed(string priority) => priorityBatches.Add(1, new KeyValuePair<string, object?>("priority", priority));

    /// <inheritdoc />
    public void Dispose() => meter.Dispose();
}

/// <summary>
/// The bounded set of <c>error_code</c> values on <c>flow_assignment_prospect_outcomes_total</c>: Gong's codes
/// (InvalidArgument, InvalidState, UnexpectedError: Gong API reference, <c>prospectsNotAssigned[].errorCode</c>) and the
/// worker's own (docs/DESIGN.md, "Per-prospect status"). Anything else, e.g. a code Gong adds later or <c>Http409</c>, is
/// <c>other</c>, so a new code cannot grow the series count.
/// </summary>
public static class OutcomeErrorCodes
{
    /// <summary>Value for a code outside the known set.</summary>
    public const string Other = "other";

    /// <summary>Every code kept as it is.</summary>
    public static IReadOnlySet<string> Known { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "InvalidArgument", "InvalidState", "UnexpectedError", "Unknown",
        "Forbidden", "FlowNotFound", "BadRequest", "MissingFromResponse", "RetriesExhausted",
        "RequestRejected", "InvalidProspectId",
    };

    /// <summary>The code itself when known, <see cref="Other"/> when not, null when there is none (attribute left out).</summary>
    public static string? Bounded(string? errorCode) =>
        string.IsNullOrEmpty(errorCode) ? null : Known.Contains(errorCode) ? errorCode : Other;
}

/// <summary>The values of <c>reason</c> on <c>flow_assignment_messages_moved_to_error_queue_total</c>.</summary>
public static class ErrorQueueReasons
{
    /// <summary>The body is not a JSON object of the contract (MassTransit could not deserialize it).</summary>
    public const string Unreadable = "unreadable";

    /// <summary>No requestId the worker can store and answer to.</summary>
    public const string UnusableRequestId = "unusable_request_id";

    /// <summary>The requestId was stored before with different content.</summary>
    public const string RequestIdConflict = "request_id_conflict";

    /// <summary>
    /// Any other exception, e.g. a Postgres error that is no outage (login refused, a missing migration). A database
    /// outage has no reason: it never moves a message to the error queue (<see cref="Ingest.IngestErrorFilter"/>).
    /// </summary>
    public const string Other = "other";
}
