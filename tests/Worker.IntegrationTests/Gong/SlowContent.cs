namespace Worker.IntegrationTests.Gong;

/// <summary>Wraps a request's content so that writing it to the connection first waits <paramref name="delay"/>: a stall
/// after the lane's latest-start check, before the request's bytes reach the socket (the HTTP/1.1 handler buffers the
/// headers with a small body and writes them together).</summary>
internal sealed class SlowContent(HttpContent inner, TimeSpan delay) : HttpContent
{
    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
    {
        await Task.Delay(delay);
        await inner.CopyToAsync(stream);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = inner.Headers.ContentLength ?? -1;
        return length >= 0;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
