using Microsoft.Extensions.Logging;
using Worker.Host.Operations;

namespace Worker.UnitTests.Operations;

public sealed class LogScopesTests
{
    [Fact]
    public void A_request_scope_carries_the_request_id()
    {
        var logger = new ScopeRecorder();
        using (LogScopes.ForRequest(logger, "crm-sync-1"))
        {
        }

        var scope = Assert.Single(logger.Scopes);
        Assert.Contains(new KeyValuePair<string, object?>("requestId", "crm-sync-1"), scope);
    }

    [Fact]
    public void A_batch_scope_carries_batch_and_flow_and_masks_the_owner()
    {
        var logger = new ScopeRecorder();
        var batchId = Guid.NewGuid();
        using (LogScopes.ForBatch(logger, batchId, "1695493301223590792", "owner@example.com"))
        {
        }

        var scope = Assert.Single(logger.Scopes);
        Assert.Contains(new KeyValuePair<string, object?>("batchId", batchId), scope);
        Assert.Contains(new KeyValuePair<string, object?>("flowId", "1695493301223590792"), scope);
        Assert.Contains(new KeyValuePair<string, object?>("owner", "o***@example.com"), scope);
        Assert.DoesNotContain("owner@example.com", scope.ToString() ?? string.Empty, StringComparison.Ordinal);
    }

    private sealed class ScopeRecorder : ILogger
    {
        public List<IReadOnlyList<KeyValuePair<string, object?>>> Scopes { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull
        {
            Scopes.Add(Assert.IsAssignableFrom<IReadOnlyList<KeyValuePair<string, object?>>>(state));
            return null;
        }

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
        }
    }
}
