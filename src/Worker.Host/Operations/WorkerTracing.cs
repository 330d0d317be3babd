using System.Diagnostics;
using Worker.Host.Dispatch;
using Worker.Host.Gong;

namespace Worker.Host.Operations;

/// <summary>
/// The worker's own OpenTelemetry traces: activity source <see cref="SourceName"/> with one span per dispatch batch
/// (<see cref="BatchSpanName"/>), beside the MassTransit and HttpClient sources (see <see cref="OperationsExtensions"/>).
/// The Gong HTTP calls of a batch are children of its span, so a trace shows claim, calls and outcome together.
/// </summary>
public static class WorkerTracing
{
    /// <summary>Activity source name (same product namespace as the meter).</summary>
    public const string SourceName = "FlowAssignment.Worker";

    /// <summary>Name of the span around one batch: from claim to recorded (or released) outcomes.</summary>
    public const string BatchSpanName = "flow_assignment.batch";

    /// <summary>Tag: the Gong flow id of the batch.</summary>
    public const string FlowIdTag = "flow_assignment.flow_id";

    /// <summary>Tag: prospects in the batch (1–200).</summary>
    public const string BatchSizeTag = "flow_assignment.batch.size";

    /// <summary>Tag: the batch id (uuid), as in the logs and <c>dispatch_batches</c>.</summary>
    public const string BatchIdTag = "flow_assignment.batch.id";

    /// <summary>
    /// Tag: what became of the batch: <c>recorded</c> (outcomes written), <c>released</c> (no answer to trust; the prospects
    /// went back to Pending), <c>lease_lost</c> (another replica reclaimed it) or <c>record_failed</c> (left to the lease).
    /// </summary>
    public const string OutcomeTag = "flow_assignment.batch.outcome";

    /// <summary>Prefix of the per-status tags of a recorded batch: <c>flow_assignment.prospects.assigned</c> etc. (counts).</summary>
    public const string ProspectsTagPrefix = "flow_assignment.prospects.";

    private static readonly ActivitySource Source = new(SourceName);

    /// <summary>Starts the span of <paramref name="batch"/> (null when nobody listens); the caller disposes it.</summary>
    internal static Activity? StartBatch(AssignmentBatch batch)
    {
        var activity = Source.StartActivity(BatchSpanName, ActivityKind.Internal);
        activity?.SetTag(FlowIdTag, batch.FlowId);
        activity?.SetTag(BatchSizeTag, batch.CrmProspectIds.Count);
        activity?.SetTag(BatchIdTag, batch.BatchId.ToString());
        return activity;
    }

    /// <summary>Sets <see cref="OutcomeTag"/> and, for a recorded batch, the count of each final status.</summary>
    internal static void SetOutcome(Activity? activity, string outcome, IReadOnlyDictionary<string, int>? outcomes = null, Exception? error = null)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag(OutcomeTag, outcome);
        foreach (var (status, count) in outcomes ?? new Dictionary<string, int>())
        {
            activity.SetTag(ProspectsTagPrefix + status.ToLowerInvariant(), count);
        }

        if (error is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, error.GetType().Name);
            activity.SetTag("error.type", error.GetType().FullName);
        }
        else if (outcome is not "recorded")
        {
            activity.SetStatus(ActivityStatusCode.Error, outcome);
        }
    }
}
