using System.Diagnostics;
using System.Globalization;

namespace Worker.Testing;

/// <summary>
/// The one "wait until" of the tests: polls a probe with a deadline (no fixed sleeps in assertions) and, on timeout,
/// fails with what it waited for and the value it last saw.
/// </summary>
/// <remarks>
/// Intervals start at 20 ms and grow by half up to 250 ms, so parallel tests do not hammer Postgres or the broker.
/// An exception thrown by the probe (an <c>Assert</c> inside it, a failed query) ends the wait at once and propagates.
/// </remarks>
public static class Poll
{
    /// <summary>Default deadline: 60 s (generous for a busy 2-core machine; a passing wait returns as soon as it holds).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Polls <paramref name="probe"/> until <paramref name="done"/> holds for its value; returns that value.</summary>
    /// <typeparam name="T">What the probe reads (a row, a status code, a count).</typeparam>
    /// <param name="probe">Reads the current state.</param>
    /// <param name="done">True when the value is the one waited for.</param>
    /// <param name="what">What is waited for, in words, for the failure message.</param>
    /// <param name="timeout">Deadline; <see cref="DefaultTimeout"/> when null.</param>
    /// <exception cref="TimeoutException">The deadline passed; the message names <paramref name="what"/> and the last value seen.</exception>
    public static Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> done, string what, TimeSpan? timeout = null) =>
        UntilCoreAsync(probe, done, what, timeout ?? DefaultTimeout, eachRound: null);

    private static async Task<T> UntilCoreAsync<T>(Func<Task<T>> probe, Func<T, bool> done, string what, TimeSpan limit, Action? eachRound)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(done);
        var elapsed = Stopwatch.StartNew();
        var interval = TimeSpan.FromMilliseconds(20);
        var rounds = 0;
        while (true)
        {
            var value = await probe().ConfigureAwait(false);
            rounds++;
            if (done(value))
            {
                return value;
            }

            if (elapsed.Elapsed > limit)
            {
                throw new TimeoutException(string.Create(
                    CultureInfo.InvariantCulture,
                    $"Timed out after {limit.TotalSeconds:0.#} s ({rounds} polls) waiting for {what}; last saw: {Describe(value)}"));
            }

            eachRound?.Invoke();
            await Task.Delay(interval).ConfigureAwait(false);
            interval = TimeSpan.FromMilliseconds(Math.Min(interval.TotalMilliseconds * 1.5, 250));
        }
    }

    /// <summary>Polls <paramref name="probe"/> until it returns true.</summary>
    /// <param name="probe">True once the state is the one waited for.</param>
    /// <param name="what">What is waited for, in words, for the failure message (name the state the probe reads).</param>
    /// <param name="timeout">Deadline; <see cref="DefaultTimeout"/> when null.</param>
    /// <exception cref="TimeoutException">The deadline passed.</exception>
    public static Task UntilAsync(Func<Task<bool>> probe, string what, TimeSpan? timeout = null) =>
        UntilAsync(probe, static held => held, what, timeout);

    /// <summary>Polls a synchronous <paramref name="probe"/> until it returns true.</summary>
    /// <param name="probe">True once the state is the one waited for.</param>
    /// <param name="what">What is waited for, in words, for the failure message.</param>
    /// <param name="timeout">Deadline; <see cref="DefaultTimeout"/> when null.</param>
    /// <exception cref="TimeoutException">The deadline passed.</exception>
    public static Task UntilAsync(Func<bool> probe, string what, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(probe);
        return UntilAsync(() => Task.FromResult(probe()), static held => held, what, timeout);
    }

    /// <summary>
    /// Polls <paramref name="probe"/> until it returns true, running <paramref name="eachRound"/> between polls (e.g. to
    /// step a fake clock). Timeout before the description, as the dispatch tests write it.
    /// </summary>
    /// <param name="probe">True once the state is the one waited for.</param>
    /// <param name="timeout">Deadline.</param>
    /// <param name="what">What is waited for, in words, for the failure message.</param>
    /// <param name="eachRound">Runs after every poll that did not hold.</param>
    /// <exception cref="TimeoutException">The deadline passed.</exception>
    public static Task UntilAsync(Func<Task<bool>> probe, TimeSpan timeout, string what, Action? eachRound = null) =>
        UntilCoreAsync(probe, static held => held, what, timeout, eachRound);

    /// <summary>Polls a synchronous <paramref name="probe"/> until it returns true (see the asynchronous overload).</summary>
    /// <param name="probe">True once the state is the one waited for.</param>
    /// <param name="timeout">Deadline.</param>
    /// <param name="what">What is waited for, in words, for the failure message.</param>
    /// <param name="eachRound">Runs after every poll that did not hold.</param>
    /// <exception cref="TimeoutException">The deadline passed.</exception>
    public static Task UntilAsync(Func<bool> probe, TimeSpan timeout, string what, Action? eachRound = null)
    {
        ArgumentNullException.ThrowIfNull(probe);
        return UntilCoreAsync(() => Task.FromResult(probe()), static held => held, what, timeout, eachRound);
    }

    private static string Describe<T>(T value) => value switch
    {
        null => "null",
        string text => text.Length > 2000 ? $"\"{text[..2000]}…\" ({text.Length} characters)" : $"\"{text}\"",
        System.Collections.IEnumerable items and not string => $"[{string.Join(", ", items.Cast<object?>().Take(20))}]",
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? value.GetType().Name,
    };
}
