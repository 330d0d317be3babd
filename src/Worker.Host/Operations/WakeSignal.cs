using System.Threading.Channels;

namespace Worker.Host.Operations;

/// <summary>
/// In-process wake-up for a loop that otherwise polls on a timer: <see cref="Notify"/> ends the current (or the next)
/// <see cref="WaitAsync"/> early. Notifications made while nobody waits collapse into one.
/// </summary>
internal class WakeSignal
{
    private readonly Channel<bool> channel = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>Wakes the waiter (or the next one).</summary>
    public void Notify() => channel.Writer.TryWrite(true);

    /// <summary>
    /// Waits until <see cref="Notify"/> is called, <paramref name="wait"/> passes on <paramref name="timeProvider"/>, or
    /// <paramref name="cancellationToken"/> is cancelled (returns then, does not throw); consumes the notification.
    /// </summary>
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
