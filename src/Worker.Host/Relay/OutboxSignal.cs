using System.Threading.Channels;

namespace Worker.Host.Relay;

/// <summary>
/// In-process nudge from the dispatcher to the relay: outbox rows were just committed, publish now instead of at the
/// next poll. Rows written by other replicas are found by the relay's poll.
/// </summary>
internal sealed class OutboxSignal
{
    private readonly Channel<bool> channel = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>Signals that unpublished rows exist.</summary>
    public void Notify() => channel.Writer.TryWrite(true);

    /// <summary>Waits until <see cref="Notify"/> is called or <paramref name="wait"/> passes on <paramref name="timeProvider"/>.</summary>
    public async Task WaitAsync(TimeSpan wait, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var signalled = channel.Reader.WaitToReadAsync(cancel.Token).AsTask();
        var delay = Task.Delay(wait, timeProvider, cancel.Token);
        await Task.WhenAny(signalled, delay).ConfigureAwait(false);
        await cancel.CancelAsync().ConfigureAwait(false);
        channel.Reader.TryRead(out _);
    }
}
