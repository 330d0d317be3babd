using System.Runtime.ExceptionServices;
using System.Text.Json;
using MassTransit;
using Worker.Host.Operations;

namespace Worker.Host.Ingest;

/// <summary>
/// First filter of the command endpoint's error pipe (before MassTransit's fault event and move to
/// <c>assign-prospects-to-flow_error</c>):
/// <list type="bullet">
/// <item>a database outage (<see cref="DatabaseOutage.IsOutage"/>) is rethrown instead, so the message is not moved to the
/// error queue: MassTransit nacks it with requeue and it is Ready again in the command queue. The endpoint's kill switch
/// (<see cref="AssignProspectsToFlowConsumerDefinition"/>) stops consuming meanwhile, so an outage of any length moves
/// nothing to the error queue;</item>
/// <item>a body the JSON reader refused (not JSON, a byte order mark, a field of the wrong JSON type, bytes that are not
/// UTF-8) is counted as <c>unreadable</c> in <c>flow_assignment.messages.ingested</c> (the consumer never ran).</item>
/// </list>
/// </summary>
internal sealed class IngestErrorFilter(WorkerMetrics metrics) : IFilter<ExceptionReceiveContext>
{
    /// <inheritdoc />
    public Task Send(ExceptionReceiveContext context, IPipe<ExceptionReceiveContext> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (DatabaseOutage.IsOutage(context.Exception))
        {
            ExceptionDispatchInfo.Throw(context.Exception);
        }

        if (IsUnreadableBody(context.Exception))
        {
            metrics.MessageIngested("unreadable");
        }

        return next.Send(context);
    }

    /// <inheritdoc />
    public void Probe(ProbeContext context) => context?.CreateFilterScope("ingest-error");

    private static bool IsUnreadableBody(Exception? exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is JsonException or System.Runtime.Serialization.SerializationException)
            {
                return true;
            }
        }

        return false;
    }
}
