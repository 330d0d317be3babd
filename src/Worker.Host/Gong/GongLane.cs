using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Worker.Host.Gong;

/// <summary>One connection to Gong, used by one send at a time.</summary>
internal sealed class GongLane : IDisposable
{
    private readonly Lock sync = new();
    private readonly Func<GongLane, SocketsHttpHandler> factory;
    private SocketsHttpHandler handler;
    private int connects;
    private int used;

    /// <summary>Creates lane <paramref name="index"/>; <paramref name="factory"/> makes its handler (again at each rotation).</summary>
    public GongLane(int index, Func<GongLane, SocketsHttpHandler> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        Index = index;
        this.factory = factory;
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
