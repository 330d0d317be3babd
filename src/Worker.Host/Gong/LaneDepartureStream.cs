using System.Net.Sockets;

namespace Worker.Host.Gong;

/// <summary>
/// A lane's connection stream: a <see cref="NetworkStream"/> that tells its lane when bytes are handed to the socket
/// (<see cref="GongLane.Wrote"/>), so a call's departure, the first write of its request, is known on this process's
/// clock. <c>SocketsHttpHandler</c> writes a request's headers (and a small body) in one buffered write, after every
/// step of the HTTP pipeline; what follows the write is the kernel and the network.
/// </summary>
internal sealed class LaneDepartureStream(Socket socket, GongLane lane) : NetworkStream(socket, ownsSocket: true)
{
    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count)
    {
        lane.Wrote();
        base.Write(buffer, offset, count);
    }

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        lane.Wrote();
        base.Write(buffer);
    }

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        lane.Wrote();
        return base.WriteAsync(buffer, offset, count, cancellationToken);
    }

    /// <inheritdoc />
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        lane.Wrote();
        return base.WriteAsync(buffer, cancellationToken);
    }
}
