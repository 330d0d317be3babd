namespace Worker.Host.Operations;

/// <summary>
/// Log scopes every stage uses so that one request or one batch can be followed through the JSON logs
/// (<c>Scopes</c> array of each line). Owner emails in scopes are masked with <see cref="EmailMask"/>.
/// </summary>
/// <example><code>using (LogScopes.ForRequest(logger, message.RequestId)) { … }</code></example>
public static class LogScopes
{
    private static readonly Func<ILogger, string, IDisposable?> RequestScope =
        LoggerMessage.DefineScope<string>("requestId:{requestId}");

    private static readonly Func<ILogger, Guid, string, string, IDisposable?> BatchScope =
        LoggerMessage.DefineScope<Guid, string, string>("batchId:{batchId} flowId:{flowId} owner:{owner}");

    /// <summary>Opens a scope carrying <c>requestId</c> (the publisher's idempotency key).</summary>
    /// <param name="logger">The logger.</param>
    /// <param name="requestId">The request's requestId.</param>
    /// <returns>The scope to dispose, or null when the logger keeps no scopes.</returns>
    public static IDisposable? ForRequest(ILogger logger, string requestId)
    {
        ArgumentNullException.ThrowIfNull(logger);
        return RequestScope(logger, requestId);
    }

    /// <summary>Opens a scope carrying <c>batchId</c>, <c>flowId</c> and the masked <c>owner</c> of a dispatch batch.</summary>
    /// <param name="logger">The logger.</param>
    /// <param name="batchId">dispatch_batches.id.</param>
    /// <param name="flowId">Gong flow id.</param>
    /// <param name="ownerEmail">Owner email in clear: it is masked here.</param>
    /// <returns>The scope to dispose, or null when the logger keeps no scopes.</returns>
    public static IDisposable? ForBatch(ILogger logger, Guid batchId, string flowId, string ownerEmail)
    {
        ArgumentNullException.ThrowIfNull(logger);
        return BatchScope(logger, batchId, flowId, EmailMask.Mask(ownerEmail));
    }
}
