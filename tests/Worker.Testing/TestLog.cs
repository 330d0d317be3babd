using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Worker.Testing;

/// <summary>
/// Log provider of a host started by a test: writes Warning and above, one line per entry (plus the exception), to the
/// test's output (xUnit <c>ITestOutputHelper.WriteLine</c>) instead of the console, so a failing test shows its host's
/// log and a passing run's console shows test results, not host noise.
/// </summary>
/// <remarks>
/// A host shared by several tests (a class fixture) writes to whichever test is attached (<see cref="Attach"/>);
/// lines logged while no test is attached are kept (the last <see cref="KeptLines"/>) and written to the next test
/// that attaches. Writing to a test that has already finished is ignored.
/// </remarks>
public sealed class TestLog : ILoggerProvider
{
    /// <summary>Lines kept while no test is attached.</summary>
    public const int KeptLines = 200;

    /// <summary>What reaches the test output: Warning and above.</summary>
    public const LogLevel MinimumLevel = LogLevel.Warning;

    private readonly Lock gate = new();
    private readonly Queue<string> kept = new();
    private Action<string>? target;

    /// <summary>A log attached to <paramref name="writeLine"/> (e.g. <c>output.WriteLine</c>), or to nothing yet when null.</summary>
    /// <param name="writeLine">Where lines go.</param>
    public TestLog(Action<string>? writeLine = null) => target = writeLine;

    /// <summary>Sends lines to <paramref name="writeLine"/> (first the kept ones) until the returned handle is disposed.</summary>
    /// <param name="writeLine">Where lines go, e.g. the current test's <c>output.WriteLine</c>.</param>
    /// <returns>Detaches again (later lines are kept for the next test).</returns>
    public IDisposable Attach(Action<string> writeLine)
    {
        ArgumentNullException.ThrowIfNull(writeLine);
        string[] backlog;
        lock (gate)
        {
            target = writeLine;
            backlog = [.. kept];
            kept.Clear();
        }

        foreach (var line in backlog)
        {
            Write(writeLine, line);
        }

        return new Detach(this, writeLine);
    }

    /// <inheritdoc />
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    /// <inheritdoc />
    public void Dispose()
    {
    }

    private void Emit(string line)
    {
        Action<string>? current;
        lock (gate)
        {
            current = target;
            if (current is null)
            {
                kept.Enqueue(line);
                while (kept.Count > KeptLines)
                {
                    kept.Dequeue();
                }

                return;
            }
        }

        Write(current, line);
    }

    private static void Write(Action<string> writeLine, string line)
    {
        try
        {
            writeLine(line);
        }
        catch (InvalidOperationException)
        {
            // The test this output belongs to has finished (xUnit: "There is no currently active test").
        }
    }

    private sealed class Detach(TestLog log, Action<string> attached) : IDisposable
    {
        public void Dispose()
        {
            lock (log.gate)
            {
                if (ReferenceEquals(log.target, attached))
                {
                    log.target = null;
                }
            }
        }
    }

    private sealed class Logger(TestLog log, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= MinimumLevel && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var time = DateTime.UtcNow.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture);
            var line = $"[host {time}] {logLevel} {category}: {formatter(state, exception)}";
            log.Emit(exception is null ? line : $"{line}{Environment.NewLine}{exception}");
        }
    }
}

/// <summary>Routes a test host's log to a <see cref="TestLog"/>.</summary>
public static class TestLogExtensions
{
    /// <summary>
    /// Replaces every provider of the host (the worker's JSON console) by <paramref name="log"/>, at
    /// <see cref="TestLog.MinimumLevel"/>: a provider-specific rule, so it wins over the category levels of the
    /// host's appsettings.json (e.g. <c>MassTransit: Information</c>) without lowering what other providers added
    /// later (a test's log capture) receive.
    /// </summary>
    /// <param name="logging">The host builder's logging.</param>
    /// <param name="log">Where the lines go.</param>
    /// <returns><paramref name="logging"/>.</returns>
    public static ILoggingBuilder UseTestLog(this ILoggingBuilder logging, TestLog log)
    {
        ArgumentNullException.ThrowIfNull(logging);
        logging.ClearProviders();
        logging.AddProvider(log);
        logging.AddFilter<TestLog>(null, TestLog.MinimumLevel);
        return logging;
    }
}
