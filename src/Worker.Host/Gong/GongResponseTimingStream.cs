using System.Net.Sockets;

namespace Worker.Host.Gong;

/// <summary>
/// The stream of a lane's connection (<see cref="GongConnectionLanes"/>): passes every read and write through to the
/// socket and tells the lane when the first bytes of each response were read (<see cref="GongLane.ResponseBytesRead"/>),
/// so a warm-up's round trip ends where the network's part of it ends, not after the HTTP stack parsed the headers and
/// resumed the caller (on a busy machine that hand-back alone took up to 26 ms, which is not network jitter).
/// </summary>
/// <remarks>
/// "First bytes of a response": the first read that completes after a write (HTTP/1.1 on one connection: a request is
/// written, then its response read). A read the HTTP stack started ahead while the connection was idle completes
/// when the response arrives, so it is stamped then too. Not thread-safe beyond what one HTTP/1.1 connection needs
/// (one request at a time).
/// </remarks>
internal sealed class GongResponseTimingStream(NetworkStream inner, GongLane lane, TimeProvider time) : Stream
{
    private volatile bool wrote;

    /// <inheritdoc />
    public override bool CanRead => inner.CanRead;

    /// <inheritdoc />
    public override bool CanSeek => false;

    /// <inheritdoc />
    public override bool CanWrite => inner.CanWrite;

    /// <inheritdoc />
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc />
    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <inheritdoc />
    public override void Flush() => inner.Flush();

    /// <inheritdoc />
    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => Stamp(inner.Read(buffer, offset, count));

    /// <inheritdoc />
    public override int Read(Span<byte> buffer) => Stamp(inner.Read(buffer));

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Stamp(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count)
    {
        wrote = true;
        inner.Write(buffer, offset, count);
    }

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        wrote = true;
        inner.Write(buffer);
    }

    /// <inheritdoc />
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        wrote = true;
        return inner.WriteAsync(buffer, cancellationToken);
    }

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override ValueTask DisposeAsync() => inner.DisposeAsync();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    private int Stamp(int read)
    {
        if (wrote)
        {
            wrote = false;
            lane.ResponseBytesRead(time.GetTimestamp());
        }

        return read;
    }
}
