using System.Net.Sockets;
using Npgsql;

namespace Worker.Host.Ingest;

/// <summary>
/// Which failures mean "Postgres is unreachable or overloaded right now" rather than "this message is bad": the one
/// predicate the ingest writer (do not split the batch), the endpoint's in-place retry, its kill switch and its error
/// pipe (never error-queue) share.
/// </summary>
public static class DatabaseOutage
{
    /// <summary>
    /// True for <see cref="NpgsqlException"/>s Npgsql marks transient (connection refused or lost, server shutting
    /// down, too many connections, pool exhausted, serialization failure) or whose cause is a socket, I/O or timeout
    /// error, and for a bare <see cref="TimeoutException"/>, <see cref="SocketException"/> or <see cref="IOException"/>; the exception's inner
    /// exceptions (also of an <see cref="AggregateException"/>) are looked at too.
    /// </summary>
    /// <param name="exception">The failure, or null.</param>
    public static bool IsOutage(Exception? exception) => exception switch
    {
        null => false,
        NpgsqlException npgsql => npgsql.IsTransient || npgsql.InnerException is SocketException or IOException or TimeoutException,
        TimeoutException or SocketException or IOException => true,
        AggregateException aggregate => aggregate.InnerExceptions.Any(IsOutage),
        _ => IsOutage(exception.InnerException),
    };
}
