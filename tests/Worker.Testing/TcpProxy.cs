using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Worker.Testing;

/// <summary>
/// A loopback TCP proxy a test can cut and restore, to make a service (e.g. Postgres) unreachable for the code
/// under test while the service itself keeps running. Listens on 127.0.0.1 on a free port (<see cref="Port"/>).
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly string targetHost;
    private readonly int targetPort;
    private readonly ConcurrentDictionary<Guid, (TcpClient Client, TcpClient Upstream)> connections = new();
    private readonly CancellationTokenSource stopping = new();
    private readonly Task acceptLoop;
    private volatile bool cut;
    private int refused;

    /// <summary>Starts forwarding 127.0.0.1:<see cref="Port"/> to <paramref name="targetHost"/>:<paramref name="targetPort"/>.</summary>
    public TcpProxy(string targetHost, int targetPort)
    {
        this.targetHost = targetHost;
        this.targetPort = targetPort;
        listener.Start();
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>The local port to connect to.</summary>
    public int Port { get; }

    /// <summary>Time each new connection waits before the proxy connects it upstream (a slow connect: TLS, a far
    /// proxy); zero by default. Set before the connections it should slow.</summary>
    public TimeSpan ConnectDelay { get; set; }

    /// <summary>Connections closed at once because the proxy was cut (a signal that the client tried while cut).</summary>
    public int RefusedConnections => Volatile.Read(ref refused);

    /// <summary>Closes every open connection and closes new ones at once until <see cref="Restore"/>.</summary>
    public void Cut()
    {
        cut = true;
        foreach (var (key, pair) in connections)
        {
            pair.Client.Dispose();
            pair.Upstream.Dispose();
            connections.TryRemove(key, out _);
        }
    }

    /// <summary>Forwards new connections again.</summary>
    public void Restore() => cut = false;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        listener.Stop();
        Cut();
        try
        {
            await acceptLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        stopping.Dispose();
    }

    private static async Task PumpAsync(TcpClient from, TcpClient to, CancellationToken cancellationToken)
    {
        try
        {
            await from.GetStream().CopyToAsync(to.GetStream(), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            // The other side went away or the proxy was cut: close both.
        }
        finally
        {
            from.Dispose();
            to.Dispose();
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            if (cut)
            {
                Interlocked.Increment(ref refused);
                client.Dispose();
                continue;
            }

            _ = Task.Run(() => ConnectAsync(client));
        }
    }

    private async Task ConnectAsync(TcpClient client)
    {
        var upstream = new TcpClient();
        try
        {
            if (ConnectDelay > TimeSpan.Zero)
            {
                await Task.Delay(ConnectDelay, stopping.Token).ConfigureAwait(false);
            }

            await upstream.ConnectAsync(targetHost, targetPort, stopping.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            client.Dispose();
            upstream.Dispose();
            return;
        }

        var key = Guid.NewGuid();
        connections[key] = (client, upstream);
        if (cut)
        {
            client.Dispose();
            upstream.Dispose();
            connections.TryRemove(key, out _);
            return;
        }

        await Task.WhenAll(
            PumpAsync(client, upstream, stopping.Token),
            PumpAsync(upstream, client, stopping.Token)).ConfigureAwait(false);
        connections.TryRemove(key, out _);
    }
}
