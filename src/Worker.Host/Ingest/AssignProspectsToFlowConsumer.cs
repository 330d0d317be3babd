using MassTransit;
using Microsoft.Extensions.Options;
using Worker.Contracts;
using Worker.Host.Operations;

namespace Worker.Host.Ingest;

/// <summary>
/// Stage 1: validates an <see cref="AssignProspectsToFlow"/> and stores it (request row, one Pending row per unique
/// valid id, Rejected rows for invalid ids, and the outbox row of a request that completes at once) in one
/// Postgres transaction shared with the deliveries being consumed at the same moment. Returning acknowledges the
/// message, so it happens only after commit.
/// </summary>
/// <remarks>
/// Throws (so the message goes to the error queue with the reason in <c>MT-Fault-Message</c>):
/// <see cref="UnusableRequestIdException"/> when there is no requestId to answer to, and
/// <see cref="RequestIdConflictException"/> when the requestId was stored before with different content.
/// Transient <see cref="Npgsql.NpgsqlException"/>s are retried by the endpoint's retry policy
/// (<see cref="AssignProspectsToFlowConsumerDefinition"/>), the message unacknowledged meanwhile.
/// </remarks>
public sealed partial class AssignProspectsToFlowConsumer : IConsumer<AssignProspectsToFlow>
{
    private readonly IngestWriter writer;
    private readonly IOptions<IngestOptions> options;
    private readonly WorkerMetrics metrics;
    private readonly ILogger<AssignProspectsToFlowConsumer> logger;

    /// <summary>Creates the consumer (resolved per delivery by MassTransit).</summary>
    public AssignProspectsToFlowConsumer(
        IngestWriter writer, IOptions<IngestOptions> options, WorkerMetrics metrics, ILogger<AssignProspectsToFlowConsumer> logger)
    {
        this.writer = writer;
        this.options = options;
        this.metrics = metrics;
        this.logger = logger;
    }

    /// <inheritdoc />
    public async Task Consume(ConsumeContext<AssignProspectsToFlow> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ValidatedRequest request;
        try
        {
            request = AssignmentValidator.Validate(context.Message, options.Value.MaxProspectsPerRequest);
        }
        catch (UnusableRequestIdException ex)
        {
            metrics.MessageIngested("unreadable");
            LogUnusable(logger, context.MessageId, ex.Message);
            throw;
        }

        var result = await writer.WriteAsync(request, context.CancellationToken).ConfigureAwait(false);
        switch (result)
        {
            case IngestWriteResult.Conflict:
                LogConflict(logger, request.RequestId);
                throw new RequestIdConflictException(
                    $"requestId \"{request.RequestId}\" was already stored with different content (flowId, owner email or crmProspectIds differ); " +
                    "the stored request stands and this message was not stored. Use a new requestId for a new request.");
            case IngestWriteResult.Duplicate:
                LogDuplicate(logger, request.RequestId);
                break;
            default:
                LogStored(logger, request.RequestId, request.ValidIds.Count, request.ProspectCount - (request.IsRejected ? 0 : request.ValidIds.Count), request.IsRejected);
                break;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "AssignProspectsToFlow {MessageId} has no usable requestId: {Reason}")]
    private static partial void LogUnusable(ILogger logger, Guid? messageId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId} was stored before with different content; message sent to the error queue")]
    private static partial void LogConflict(ILogger logger, string requestId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Request {RequestId} was stored before with the same content; nothing added")]
    private static partial void LogDuplicate(ILogger logger, string requestId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Request {RequestId} stored: {Pending} pending, {Rejected} rejected ids, request rejected: {RequestRejected}")]
    private static partial void LogStored(ILogger logger, string requestId, int pending, int rejected, bool requestRejected);
}
