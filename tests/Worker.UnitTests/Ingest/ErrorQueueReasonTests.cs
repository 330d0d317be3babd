using System.Net.Sockets;
using Npgsql;
using Worker.Host.Ingest;
using Worker.Host.Operations;

namespace Worker.UnitTests.Ingest;

/// <summary>
/// The <c>reason</c> of <c>flow_assignment_messages_moved_to_error_queue_total</c>: a Postgres error that is no outage
/// is <c>other</c>; an outage is never counted because the error pipe's filter rethrows it before counting.
/// </summary>
public sealed class ErrorQueueReasonTests
{
    [Theory]
    [InlineData("28P01")] // login refused after a password change
    [InlineData("42P01")] // a table missing: migrate did not run
    public void A_postgres_error_that_is_no_outage_is_other(string sqlState)
    {
        var refused = new PostgresException("refused", "FATAL", "FATAL", sqlState);

        Assert.False(DatabaseOutage.IsOutage(refused));
        Assert.Equal(ErrorQueueReasons.Other, IngestErrorFilter.Classify(refused));
    }

    [Fact]
    public void Every_failure_the_removed_database_unavailable_reason_counted_is_an_outage_the_error_filter_rethrows()
    {
        // What the error-queue count once counted as database_unavailable without a non-transient Postgres error:
        // IngestErrorFilter rethrows each before counting, so the message goes back to the queue.
        Exception[] outages =
        [
            new NpgsqlException("lost", new SocketException((int)SocketError.ConnectionRefused)),
            new TimeoutException("pool"),
            new SocketException((int)SocketError.ConnectionReset),
            new AggregateException(new NpgsqlException("lost", new IOException("reset"))),
        ];

        Assert.All(outages, e => Assert.True(DatabaseOutage.IsOutage(e), e.ToString()));
    }
}
