using System.Text.Json;
using MassTransit;
using Worker.Host.Operations;

namespace Worker.Host.Ingest;

/// <summary>
/// First filter of the command endpoint's error pipe: counts each message on its way to the error queue in
/// <c>flow_assignment_messages_moved_to_error_queue_total{reason}</c> (reasons in <see cref="ErrorQueueReasons"/>), then
/// passes it on to MassTransit's fault and error-transport filters.
/// </summary>
internal sealed class ErrorQueueCountFilter(WorkerMetrics metrics) : IFilter<ExceptionReceiveContext>
{
    public Task Send(ExceptionReceiveContext context, IPipe<ExceptionReceiveContext> next)
    {
        metrics.MovedToErrorQueue(Classify(context.Exception));
        return next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("errorQueueCount");

    /// <summary>The bounded reason for <paramref name="exception"/> (unwrapping aggregate and inner exceptions).</summary>
    /// <remarks>
    /// A database outage never gets here: <see cref="IngestErrorFilter"/>, before this filter, rethrows it so the message
    /// goes back to the queue. A Postgres error that is no outage (e.g. 28P01 login refused, 42P01 a missing migration) is
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
}
