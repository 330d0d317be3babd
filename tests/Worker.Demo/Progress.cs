using Npgsql;

namespace Worker.Demo;

/// <summary>One progress line, read from the worker's tables.</summary>
internal sealed record Progress(long CompletedRequests, long Open, long Final, long AssignCalls)
{
    public static async Task<Progress> ReadAsync(NpgsqlDataSource dataSource, string prefix, DateTimeOffset since, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """
            SELECT
              (SELECT count(*) FROM assignment_requests WHERE request_id LIKE $1 AND status IS NOT NULL),
              (SELECT count(*) FROM prospect_assignments p JOIN assignment_requests r ON r.id = p.assignment_request_id
                 WHERE r.request_id LIKE $1 AND p.status IN ('Pending', 'InFlight')),
              (SELECT count(*) FROM prospect_assignments p JOIN assignment_requests r ON r.id = p.assignment_request_id
                 WHERE r.request_id LIKE $1 AND p.status NOT IN ('Pending', 'InFlight')),
              (SELECT count(*) FROM gong_calls WHERE endpoint = 'assign' AND started_at >= $2)
            """);
        command.Parameters.AddWithValue(prefix);
        command.Parameters.AddWithValue(since);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new Progress(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3));
    }
}
