using Worker.Host.Dispatch;
using Worker.Persistence.Entities;

namespace Worker.Host.Gong;

/// <summary>
/// The state of one batch's send, shared by the send loop (<see cref="GongBatchSender"/>) and the parts it composes:
/// the result decided so far per prospect, the ids that must be looked up before any resend, the calls still to make,
/// the <c>gong_calls</c> rows, and why the send stopped early. Used by one send at a time; not thread-safe.
/// </summary>
internal sealed class BatchSend(AssignmentBatch batch)
{
    /// <summary>The claimed batch.</summary>
    public AssignmentBatch Batch { get; } = batch;

    /// <summary>Decided results by CRM id; the first decision for an id wins (see <see cref="Settle"/>).</summary>
    public Dictionary<string, ProspectResult> Results { get; } = new(StringComparer.Ordinal);

    /// <summary>Ids that may be in the flow already (an unknown outcome, a failed or unfinished lookup): whatever they
    /// end with, they carry ReconcileFirst.</summary>
    public HashSet<string> MustReconcile { get; } = new(StringComparer.Ordinal);

    /// <summary>Ids whose earlier call's outcome was unknown (ReconcileFirst on arrival).</summary>
    public HashSet<string> Uncertain { get; } = new(StringComparer.Ordinal);

    /// <summary>Uncertain ids a resend found "already in this flow", to be confirmed by a lookup.</summary>
    public Dictionary<string, ProspectResult> ToConfirm { get; } = new(StringComparer.Ordinal);

    /// <summary>Assign calls still to make, in order.</summary>
    public LinkedList<SendWork> Work { get; } = new();

    /// <summary>One row per HTTP call made (assign and lookup).</summary>
    public List<GongCall> Calls { get; } = [];

    /// <summary>Why the send stopped before its work was done; null while it runs.</summary>
    public SendHalt? Halt { get; set; }

    /// <summary>The connection this send warms and calls on.</summary>
    public GongLane? Lane { get; set; }

    /// <summary>Records <paramref name="result"/> for every id of <paramref name="ids"/> not decided yet.</summary>
    public void Settle(IEnumerable<string> ids, Func<string, ProspectResult> result)
    {
        foreach (var id in ids)
        {
            Results.TryAdd(id, result(id));
        }
    }

    /// <summary>Queues the ids of <paramref name="work"/> again, first, in assign calls of at most <paramref name="size"/>.</summary>
    public void Rechunk(SendWork work, int size)
    {
        foreach (var chunk in work.Ids.Chunk(size).Reverse())
        {
            Work.AddFirst(new SendWork(chunk));
        }
    }
}

/// <summary>One assign call to make.</summary>
/// <param name="Ids">Unique CRM ids, at most the effective batch size.</param>
/// <param name="SplitFrom">When this is a half of a call Gong refused with 400: that call.</param>
internal sealed record SendWork(IReadOnlyList<string> Ids, Bisection? SplitFrom = null);

/// <summary>Why a send stopped early: every prospect not yet decided goes back to Pending (Requeue) with this reason.</summary>
/// <param name="Code">The prospects' error code (TooManyRequests, Unauthorized, ConnectionFailed, Shutdown, …).</param>
/// <param name="Message">The reason, for the prospects' error message.</param>
/// <param name="NotBefore">Earliest next dispatch (UTC), or null when something shared (the gate, the credentials
/// pause) holds the work instead.</param>
internal sealed record SendHalt(string Code, string Message, DateTimeOffset? NotBefore);
