using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Worker.Host.Gong;

/// <summary>One connection to Gong, used by one send at a time.</summary>
internal sealed class GongLane : IDisposable
{
    private readonly Lock sync = new();
    private readonly Func<GongLane, SocketsHttpHandler> factory;
    private readonly TimeProvider time;
    private SocketsHttpHandler handler;
    private TaskCompletionSource<DateTimeOffset?>? departure;
    private int connects;
    private int used;

    /// <summary>Creates lane <paramref name="index"/>; <paramref name="factory"/> makes its handler (again at each
    /// rotation); <paramref name="time"/> (default: the system clock) times departures.</summary>
    public GongLane(int index, Func<GongLane, SocketsHttpHandler> factory, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(factory);
        Index = index;
        this.factory = factory;
        this.time = time ?? TimeProvider.System;
        handler = factory(this);
    }

    /// <summary>0-based lane number (log and test output).</summary>
    public int Index { get; }

    /// <summary>New TCP connections this lane has opened so far (a warm-up that raised it met a cold connection).</summary>
    public int Connects => Volatile.Read(ref connects);

    /// <summary>True for the first caller only: the lane's first use (its connection is opened then, once).</summary>
    public bool FirstUse() => Interlocked.Exchange(ref used, 1) == 0;

    /// <summary>When the lane's current connection was opened (UTC), or null before the first.</summary>
    public DateTimeOffset? ConnectedAt { get; private set; }

    /// <summary>Sends on this lane's connection.</summary>
    public Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        SocketsHttpHandler current;
        lock (sync)
        {
            current = handler;
        }

        return new HttpMessageInvoker(current, disposeHandler: false).SendAsync(request, cancellationToken);
    }

    /// <summary>Watches for the next request's departure: the returned task completes with the instant (this process's
    /// clock, UTC) its first bytes were handed to the connection (<see cref="LaneDepartureStream"/>), or with null
    /// when <see cref="EndDeparture"/> comes first (nothing was written). One watch at a time: the lane's send makes
    /// one call at a time.</summary>
    public Task<DateTimeOffset?> WatchDeparture()
    {
        var watch = new TaskCompletionSource<DateTimeOffset?>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref departure, watch);
        return watch.Task;
    }

    /// <summary>Ends the watch started by <see cref="WatchDeparture"/> (its task completes with null if nothing was
    /// written).</summary>
    public void EndDeparture() => Interlocked.Exchange(ref departure, null)?.TrySetResult(null);

    /// <summary>Called by the connection's stream at each write: completes the watch, if any, with now.</summary>
    public void Wrote()
    {
        if (Volatile.Read(ref departure) is not null && Interlocked.Exchange(ref departure, null) is { } watch)
        {
            watch.TrySetResult(time.GetUtcNow());
        }
    }

    /// <summary>Replaces the connection when it is older than <paramref name="lifetime"/> (called only by a warm-up,
    /// while the lane's send has nothing in flight).</summary>
    public void RotateIfOlderThan(TimeSpan lifetime, DateTimeOffset now)
    {
        SocketsHttpHandler? old = null;
        lock (sync)
        {
            if (ConnectedAt is { } at && now - at > lifetime)
            {
                old = handler;
                handler = factory(this);
                ConnectedAt = null;
            }
        }

        old?.Dispose();
    }

    /// <summary>Records a new connection.</summary>
    public void Connected(DateTimeOffset at)
    {
        Interlocked.Increment(ref connects);
        lock (sync)
        {
            ConnectedAt = at;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (sync)
        {
            handler.Dispose();
        }
    }
}
