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
/// UTF-8) is counted as <c>unreadable</c> in <c>flow_assignment.messages.ingested</c> (the consumer never ran);</item>
/// <item>every message that goes on to the error queue is counted in
/// <c>flow_assignment_messages_moved_to_error_queue_total{reason}</c> (reasons in <see cref="ErrorQueueReasons"/>), so an
/// alert sees error-queue inflow without RabbitMQ's own exporter.</item>
/// </list>
/// Then MassTransit's fault and error-transport filters run.
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

        metrics.MovedToErrorQueue(Classify(context.Exception));
        return next.Send(context);
    }

    /// <inheritdoc />
    public void Probe(ProbeContext context) => context?.CreateFilterScope("ingest-error");

    /// <summary>The bounded reason for <paramref name="exception"/> (unwrapping aggregate and inner exceptions).</summary>
    /// <remarks>
    /// A database outage is never classified: <see cref="Send"/> rethrows it first, so the message goes back to the queue.
    /// A Postgres error that is no outage (e.g. 28P01 login refused, 42P01 a missing migration) is
    /// <see cref="ErrorQueueReasons.Other"/>; the fault headers name it.
    /// </remarks>
    internal static string Classify(Exception exception)
    {
        for (Exception? ex = exception; ex is not null; ex = Inner(ex))
        {
            switch (ex)
            {
                case UnusableRequestIdException:
                    return ErrorQueueReasons.UnusableRequestId;
                case RequestIdConflictException:
                    return ErrorQueueReasons.RequestIdConflict;
                case JsonException:
                // MassTransit's SerializationException (envelope or body not readable), matched by name across its versions.
                case not null when ex.GetType().Name == "SerializationException":
                    return ErrorQueueReasons.Unreadable;
            }
        }

        return ErrorQueueReasons.Other;
    }

    private static Exception? Inner(Exception? ex) =>
        ex is AggregateException { InnerExceptions.Count: 1 } aggregate ? aggregate.InnerExceptions[0] : ex?.InnerException;

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
