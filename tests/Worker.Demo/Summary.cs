using System.Collections.Concurrent;
using System.Globalization;
using Npgsql;

namespace Worker.Demo;

/// <summary>The end-of-run figures, read from the worker's tables.</summary>
internal sealed class Summary
{
    private const int MaxBatchSize = 200;

    private List<(string Status, long Count)> requests = [];
    private List<(string Status, string Code, long Count)> prospects = [];
    private List<(string Endpoint, string Http, long Calls, long Prospects)> calls = [];
    private long storedRequests;
    private long openProspects;
    private double meanFill;
    private long minimumCalls;
    private double callSpanSeconds;

    public static async Task<Summary> ReadAsync(NpgsqlDataSource dataSource, string prefix, DateTimeOffset since, CancellationToken cancellationToken)
    {
        var summary = new Summary();
        await foreach (var row in QueryAsync(dataSource, "SELECT coalesce(status, '(open)'), count(*) FROM assignment_requests WHERE request_id LIKE $1 GROUP BY 1 ORDER BY 2 DESC", prefix, since, cancellationToken))
        {
            summary.requests.Add(((string)row[0], (long)row[1]));
        }

        await foreach (var row in QueryAsync(dataSource,
            """
            SELECT p.status, coalesce(p.error_code, ''), count(*) FROM prospect_assignments p
            JOIN assignment_requests r ON r.id = p.assignment_request_id WHERE r.request_id LIKE $1 GROUP BY 1, 2 ORDER BY 3 DESC
            """, prefix, since, cancellationToken))
        {
            summary.prospects.Add(((string)row[0], (string)row[1], (long)row[2]));
        }

        await foreach (var row in QueryAsync(dataSource,
            "SELECT endpoint, coalesce(http_status::text, 'none'), count(*), coalesce(sum(prospect_count), 0) FROM gong_calls WHERE started_at >= $2 GROUP BY 1, 2 ORDER BY 1, 2",
            prefix, since, cancellationToken))
        {
            summary.calls.Add(((string)row[0], (string)row[1], (long)row[2], (long)row[3]));
        }

        await foreach (var row in QueryAsync(dataSource,
            """
            SELECT
              (SELECT count(*) FROM assignment_requests WHERE request_id LIKE $1),
              (SELECT count(*) FROM prospect_assignments p JOIN assignment_requests r ON r.id = p.assignment_request_id
                 WHERE r.request_id LIKE $1 AND p.status IN ('Pending', 'InFlight')),
              (SELECT coalesce(avg(prospect_count), 0)::float8 FROM gong_calls WHERE started_at >= $2 AND endpoint = 'assign' AND http_status = 200),
              (SELECT coalesce(sum(ceil(n / 200.0)), 0)::bigint FROM (
                 SELECT p.flow_id, p.owner_email, count(DISTINCT p.crm_prospect_id) AS n FROM prospect_assignments p
                 JOIN assignment_requests r ON r.id = p.assignment_request_id
                 WHERE r.request_id LIKE $1 AND p.status <> 'Rejected' GROUP BY 1, 2) g),
              (SELECT coalesce(extract(epoch FROM max(started_at) - min(started_at)), 0)::float8 FROM gong_calls WHERE started_at >= $2)
            """, prefix, since, cancellationToken))
        {
            summary.storedRequests = (long)row[0];
            summary.openProspects = (long)row[1];
            summary.meanFill = (double)row[2];
            summary.minimumCalls = (long)row[3];
            summary.callSpanSeconds = (double)row[4];
        }

        return summary;
    }

    /// <summary>Prints the summary; returns false when anything is lost or stuck.</summary>
    public bool Print(TextWriter output, int published, ConcurrentDictionary<string, int> events, int distinctMessageIds, TimeSpan elapsed, double limit, string? simulatorStats)
    {
        var c = CultureInfo.InvariantCulture;
        output.WriteLine();
        output.WriteLine("Requests by status");
        foreach (var (status, count) in requests)
        {
            output.WriteLine(string.Format(c, "  {0,-20} {1,8:N0}", status, count));
        }

        output.WriteLine("Prospects by outcome");
        foreach (var (status, code, count) in prospects)
        {
            output.WriteLine(string.Format(c, "  {0,-12} {1,-22} {2,8:N0}", status, code, count));
        }

        output.WriteLine("  (the workload contains on purpose: invalid requests and ids -> Rejected; prospects already in an");
        output.WriteLine("   exclusive flow, or requested again after Gong assigned them -> NotAssigned/InvalidState)");
        output.WriteLine("Gong calls");
        foreach (var (endpoint, http, n, p) in calls)
        {
            output.WriteLine(string.Format(c, "  {0,-8} HTTP {1,-5} {2,6:N0} calls {3,9:N0} prospects", endpoint, http, n, p));
        }

        var assignCalls = calls.Where(x => x.Endpoint == "assign").Sum(x => x.Calls);
        var allCalls = calls.Sum(x => x.Calls);
        var throttled = calls.Where(x => x.Http == "429").Sum(x => x.Calls);
        output.WriteLine(string.Format(c, "  assign calls {0:N0} vs minimum {1:N0} (sum over groups of ceil(n/{2}))", assignCalls, minimumCalls, MaxBatchSize));
        output.WriteLine(string.Format(c, "  mean batch fill {0:0.0} of {1} ({2:0.0}%)", meanFill, MaxBatchSize, 100 * meanFill / MaxBatchSize));
        var rate = callSpanSeconds > 0 ? allCalls / callSpanSeconds : 0;
        output.WriteLine(string.Format(c, "  achieved {0:0.00} calls/s over {1:0.0} s against a limit of {2:0.#} calls/s ({3:0}%); 429s: {4}", rate, callSpanSeconds, limit, limit > 0 ? 100 * rate / limit : 0, throttled));
        if (simulatorStats is not null)
        {
            output.WriteLine($"  simulator: {simulatorStats}");
            output.WriteLine("  (duplicateOfApiAssignmentAttempts is not 0 here on purpose: the workload requests some prospects again in new");
            output.WriteLine("   requests after Gong assigned them, which end NotAssigned/InvalidState; tests and benchmarks request each once and need 0)");
        }

        var duplicates = events.Values.Sum() - events.Count;
        output.WriteLine(string.Format(c, "Events: {0:N0} of {1:N0} requests ({2} redelivered duplicates, {3:N0} distinct MessageIds)", events.Count, published, duplicates, distinctMessageIds));
        output.WriteLine(string.Format(c, "Elapsed: {0:0.0} s", elapsed.TotalSeconds));

        var completed = requests.Where(r => r.Status != "(open)").Sum(r => r.Count);
        var problems = new List<string>();
        if (storedRequests != published)
        {
            problems.Add($"{published - storedRequests} request(s) published but not stored");
        }

        if (completed != published)
        {
            problems.Add($"{published - completed} request(s) without a final status");
        }

        if (openProspects != 0)
        {
            problems.Add($"{openProspects} prospect(s) still Pending or InFlight");
        }

        if (events.Count != published)
        {
            problems.Add($"{published - events.Count} request(s) without a FlowAssignmentCompleted event");
        }

        foreach (var problem in problems)
        {
            output.WriteLine("PROBLEM: " + problem);
        }

        return problems.Count == 0;
    }

    private static async IAsyncEnumerable<object[]> QueryAsync(NpgsqlDataSource dataSource, string sql, string prefix, DateTimeOffset since, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(sql);
        command.Parameters.AddWithValue(prefix);
        command.Parameters.AddWithValue(since);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var values = new object[reader.FieldCount];
            reader.GetValues(values);
            yield return values;
        }
    }
}
