using System.Collections.Concurrent;
using System.Diagnostics;
using Worker.Host.Dispatch;
using Worker.Host.Gong;
using Worker.Persistence.Entities;

namespace Worker.IntegrationTests.Dispatch;

/// <summary>
/// Test double of the Gong client that behaves like Gong: remembers which prospect is in which flow (a re-add is
/// NotAssigned/InvalidState), answers per prospect, looks reconcile-first ids up before assigning, records every call
/// with its ids and wall-clock start, and can be told to hang or throttle (a simple shared 3 calls/s gate).
/// </summary>
internal sealed class GongStub : IGongBatchSender, IGongDispatchState
{
    private readonly ConcurrentDictionary<(string Flow, string Id), string> instances = new();
    private readonly ConcurrentDictionary<(string Flow, string Id), int> assigns = new();
    private readonly ConcurrentQueue<StubCall> calls = new();
    private readonly Lock gateLock = new();
    private long nextSlotTicks;
    private long instanceSeq = 1_000_000_000_000_000_000;

    /// <summary>Runs after Gong committed the call and before the answer returns (e.g. hang to simulate a lost answer).</summary>
    public Func<StubCall, CancellationToken, Task>? AfterCommit { get; set; }

    /// <summary>Wall-clock latency of every call.</summary>
    public TimeSpan Latency { get; set; }

    /// <summary>When set, starts are spaced so no more than this many calls start in any one-second window.</summary>
    public int? CallsPerSecond { get; set; }

    public GongPause? Pause { get; set; }

    public DateTimeOffset? BlockedUntil { get; set; }

    public IReadOnlyList<StubCall> Calls => [.. calls];

    /// <summary>How many times each (flow, id) was actually added to a flow.</summary>
    public IReadOnlyDictionary<(string Flow, string Id), int> AssignCounts => assigns;

    public Task<DateTimeOffset?> GetBlockedUntilAsync(CancellationToken cancellationToken) => Task.FromResult(BlockedUntil);

    public async Task<BatchResult> SendAsync(AssignmentBatch batch, CancellationToken cancellationToken)
    {
        var started = await TakeSlotAsync(cancellationToken);
        var watch = Stopwatch.StartNew();
        var call = new StubCall(calls.Count, batch.BatchId, batch.FlowId, batch.OwnerEmail, batch.CrmProspectIds, batch.ReconcileFirst, started);
        calls.Enqueue(call);
        Assert.Equal(batch.CrmProspectIds.Count, batch.CrmProspectIds.Distinct(StringComparer.Ordinal).Count());

        var requestId = "gong-" + Guid.NewGuid().ToString("N")[..12];
        var results = new List<ProspectResult>();
        var rows = new List<GongCall>();
        var toAssign = new List<string>();
        foreach (var id in batch.CrmProspectIds)
        {
            if (batch.ReconcileFirst.Contains(id) && instances.TryGetValue((batch.FlowId, id), out var found))
            {
                results.Add(new ProspectResult(id, ProspectResultKind.Assigned, found, "Running", GongRequestId: requestId, Reconciled: true));
            }
            else
            {
                toAssign.Add(id);
            }
        }

        if (batch.ReconcileFirst.Count > 0)
        {
            rows.Add(Row(batch, "lookup", batch.ReconcileFirst.Count, requestId, started, watch.Elapsed));
        }

        foreach (var id in toAssign)
        {
            var instance = Interlocked.Increment(ref instanceSeq).ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (instances.TryAdd((batch.FlowId, id), instance))
            {
                assigns.AddOrUpdate((batch.FlowId, id), 1, (_, n) => n + 1);
                results.Add(new ProspectResult(id, ProspectResultKind.Assigned, instance, "Pending", GongRequestId: requestId));
            }
            else
            {
                results.Add(new ProspectResult(id, ProspectResultKind.NotAssigned, ErrorCode: "InvalidState",
                    ErrorMessage: "Prospect is already in this flow", GongRequestId: requestId));
            }
        }

        if (AfterCommit is { } hook)
        {
            await hook(call, cancellationToken);
        }

        if (Latency > TimeSpan.Zero)
        {
            await Task.Delay(Latency, cancellationToken);
        }

        if (toAssign.Count > 0)
        {
            rows.Add(Row(batch, "assign", toAssign.Count, requestId, started, watch.Elapsed));
        }

        return new BatchResult(results, rows);
    }

    private static GongCall Row(AssignmentBatch batch, string endpoint, int count, string requestId, DateTimeOffset started, TimeSpan duration) => new()
    {
        BatchId = batch.BatchId,
        Endpoint = endpoint,
        FlowId = batch.FlowId,
        OwnerEmail = batch.OwnerEmail,
        ProspectCount = count,
        HttpStatus = 200,
        GongRequestId = requestId,
        OutcomeClass = GongCallOutcomeClass.Answered,
        StartedAt = started,
        DurationMs = duration.TotalMilliseconds,
    };

    /// <summary>Returns the call's start: now, or with a gate the slot it was granted (the call waits for it).</summary>
    private async Task<DateTimeOffset> TakeSlotAsync(CancellationToken cancellationToken)
    {
        if (CallsPerSecond is not { } rate)
        {
            return DateTimeOffset.UtcNow;
        }

        DateTimeOffset slot;
        lock (gateLock)
        {
            var now = DateTimeOffset.UtcNow.UtcTicks;
            var start = Math.Max(now, nextSlotTicks);
            nextSlotTicks = start + (TimeSpan.TicksPerSecond / rate) + TimeSpan.TicksPerMillisecond;
            slot = new DateTimeOffset(start, TimeSpan.Zero);
        }

        var wait = slot - DateTimeOffset.UtcNow;
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, cancellationToken);
        }

        return slot;
    }
}

/// <summary>One call the stub received.</summary>
internal sealed record StubCall(
    int Index,
    Guid BatchId,
    string FlowId,
    string OwnerEmail,
    IReadOnlyList<string> CrmProspectIds,
    IReadOnlySet<string> ReconcileFirst,
    DateTimeOffset StartedAt);
