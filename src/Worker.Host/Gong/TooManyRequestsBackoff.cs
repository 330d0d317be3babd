using Microsoft.Extensions.Options;

namespace Worker.Host.Gong;

/// <summary>The gate block for a 429 without Retry-After: <c>TooManyRequestsBackoff × 2^(such 429s in a row − 1)</c>,
/// capped at <c>TooManyRequestsMaxBackoff</c>. One per process (a singleton), thread-safe.</summary>
internal sealed class TooManyRequestsBackoff(IOptions<GongOptions> options)
{
    private readonly Lock sync = new();
    private int inARow;

    /// <summary>Counts a 429 without Retry-After and returns how long to block the gate for it.</summary>
    public TimeSpan Next()
    {
        var o = options.Value;
        lock (sync)
        {
            inARow = Math.Min(inARow + 1, 30);
            return TimeSpan.FromTicks(Math.Min(
                o.TooManyRequestsMaxBackoff.Ticks,
                o.TooManyRequestsBackoff.Ticks * (long)Math.Pow(2, Math.Min(inARow - 1, 20))));
        }
    }

    /// <summary>Records an answer other than 429: the backoff starts again from its base.</summary>
    public void Reset()
    {
        lock (sync)
        {
            inARow = 0;
        }
    }
}
