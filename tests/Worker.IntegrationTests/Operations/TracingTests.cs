using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Worker.Contracts;
using Worker.Host.Operations;
using Worker.IntegrationTests.EndToEnd;

namespace Worker.IntegrationTests.Operations;

/// <summary>OpenTelemetry traces of a real drain: the batch span and its tags, the Gong HTTP call inside it, trace ids in the log.</summary>
public sealed class TracingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_batch_has_a_span_with_flow_size_and_outcome_its_Gong_call_is_a_child_and_its_log_lines_carry_the_trace_id()
    {
        const string flow = "1695493301223598888";
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is WorkerTracing.SourceName or "System.Net.Http" or "MassTransit",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        var logs = new ScopeCapture();

        await using var world = await EndToEndWorld.StartAsync(
            settings: ["--Logging:LogLevel:Worker.Host.Dispatch=Debug"],
            configureWorker: builder => builder.Logging.AddProvider(logs), output: output);
        var ids = EndToEndWorld.Ids("traced-", 7);
        await world.PublishAsync(new AssignProspectsToFlow("traced-1", flow, "owner@example.com", ids));
        await world.WaitForEventsAsync(["traced-1"], TimeSpan.FromSeconds(90));

        var batch = Assert.Single(stopped, a => a.OperationName == WorkerTracing.BatchSpanName && Equals(a.GetTagItem(WorkerTracing.FlowIdTag), flow));
        Assert.Equal(7, batch.GetTagItem(WorkerTracing.BatchSizeTag));
        Assert.Equal("recorded", batch.GetTagItem(WorkerTracing.OutcomeTag));
        Assert.Equal(7, batch.GetTagItem(WorkerTracing.ProspectsTagPrefix + "assigned"));
        Assert.Equal(ActivityStatusCode.Unset, batch.Status);

        // The assign POST to the simulator runs inside the batch span (beside the rate gate's uncounted warm-up requests
        // on the same connection, which are children too).
        var gongCalls = stopped.Where(a => a.Source.Name == "System.Net.Http" && a.TraceId == batch.TraceId).ToList();
        var call = Assert.Single(gongCalls, a => (a.GetTagItem("url.full") as string)?.EndsWith("/v2/flows/prospects/assign", StringComparison.Ordinal) == true);
        Assert.Equal("POST", call.GetTagItem("http.request.method"));
        Assert.Contains(stopped, a => a.Source.Name == "MassTransit");

        var batchId = (string)batch.GetTagItem(WorkerTracing.BatchIdTag)!;
        var claimed = Assert.Single(logs.Lines, l => l.Message.Contains($"Batch {batchId} claimed", StringComparison.Ordinal));
        Assert.Equal(batch.TraceId.ToHexString(), claimed.TraceId);
    }

    /// <summary>Keeps each message with the TraceId of its scope (what the JSON console writes under "Scopes").</summary>
    private sealed class ScopeCapture : ILoggerProvider, ISupportExternalScope
    {
        private IExternalScopeProvider? scopes;

        public ConcurrentQueue<(string Message, string? TraceId)> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => scopes = scopeProvider;

        public void Dispose()
        {
        }

        private sealed class Logger(ScopeCapture owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => owner.scopes?.Push(state);

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                string? traceId = null;
                owner.scopes?.ForEachScope(
                    (scope, _) =>
                    {
                        if (scope is IEnumerable<KeyValuePair<string, object?>> pairs && pairs.FirstOrDefault(p => p.Key == "TraceId").Value is { } value)
                        {
                            traceId = value.ToString();
                        }
                    },
                    (object?)null);
                owner.Lines.Enqueue((formatter(state, exception), traceId));
            }
        }
    }
}
