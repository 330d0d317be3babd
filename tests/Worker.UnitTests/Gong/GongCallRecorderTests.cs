using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Host.Operations;
using Worker.Persistence.Entities;

namespace Worker.UnitTests.Gong;

public sealed class GongCallRecorderTests
{
    private static readonly DateTimeOffset Started = new(2026, 11, 30, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_call_row_names_the_configured_replica()
    {
        using var services = Services();
        var recorder = Recorder(services, new DispatchOptions { ReplicaName = "replica-a" });
        var send = new BatchSend(new AssignmentBatch(Guid.NewGuid(), "1", "owner@example.com", ["p"], new HashSet<string>()));

        var call = recorder.Record(send, "assign", 1, new GongHttpResult(GongCallKind.Answered, 200, "r-1", null, null, null, Started, TimeSpan.FromMilliseconds(120)));

        Assert.Same(call, Assert.Single(send.Calls));
        Assert.Equal("replica-a", call.Replica);
        Assert.Equal((send.Batch.BatchId, "assign", "1", "owner@example.com", 1, 200, "r-1", GongCallOutcomeClass.Answered, Started, 120.0),
            (call.BatchId!.Value, call.Endpoint, call.FlowId, call.OwnerEmail, call.ProspectCount, call.HttpStatus!.Value, call.GongRequestId, call.OutcomeClass, call.StartedAt, call.DurationMs));
    }

    [Fact]
    public void Without_a_configured_name_the_row_names_POD_NAME_or_the_machine()
    {
        using var services = Services();
        var recorder = Recorder(services, new DispatchOptions());
        var send = new BatchSend(new AssignmentBatch(Guid.NewGuid(), "1", "owner@example.com", ["p"], new HashSet<string>()));

        var call = recorder.Record(send, "lookup", 1, new GongHttpResult(GongCallKind.OutcomeUnknown, null, null, null, "attempt timeout", null, Started, TimeSpan.FromSeconds(90)));

        var pod = Environment.GetEnvironmentVariable("POD_NAME");
        Assert.Equal(string.IsNullOrWhiteSpace(pod) ? Environment.MachineName : pod, call.Replica);
    }

    [Fact]
    public void Each_call_gets_its_own_version_7_key_and_a_bounded_error()
    {
        using var services = Services();
        var recorder = Recorder(services, new DispatchOptions { ReplicaName = "r" });
        var send = new BatchSend(new AssignmentBatch(Guid.NewGuid(), "1", "owner@example.com", ["p"], new HashSet<string>()));
        var result = new GongHttpResult(GongCallKind.TooManyRequests, 429, null, null, new string('x', 5000), Started, Started, TimeSpan.FromMilliseconds(5));

        var first = recorder.Record(send, "assign", 1, result);
        var second = recorder.Record(send, "assign", 1, result);

        Assert.NotEqual(first.CallId, second.CallId);
        Assert.All(send.Calls, c => Assert.Equal(7, c.CallId!.Value.Version));
        Assert.Equal(GongCallRecorder.MaxErrorLength, first.Error!.Length);
    }

    private static ServiceProvider Services() => new ServiceCollection().AddMetrics().BuildServiceProvider();

    private static GongCallRecorder Recorder(ServiceProvider services, DispatchOptions dispatch) =>
        new(Options.Create(dispatch), new WorkerMetrics(services.GetRequiredService<IMeterFactory>()));
}
