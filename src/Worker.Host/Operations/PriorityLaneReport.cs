using System.Globalization;
using Npgsql;
using Worker.Host.Persistence;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Worker.Host.Operations;

/// <summary>One priority lane's figures, as the view <c>ops_priority_lanes</c> gives them.</summary>
/// <param name="Priority">Lane name as stored: High, Normal or Bulk.</param>
/// <param name="Pending">Pending prospects of the lane.</param>
/// <param name="InFlight">InFlight prospects of the lane (claimed in a batch).</param>
/// <param name="OldestPending">Arrival (UTC) of the lane's oldest Pending prospect; null when none is Pending.</param>
/// <param name="CompletedLast5Minutes">Prospects of the lane that reached a final outcome after a call in the last 5 minutes.</param>
/// <param name="CompletedLastHour">The same over the last hour.</param>
/// <param name="BatchesLastHour">Batches claimed in the last hour whose most urgent row is of the lane.</param>
public sealed record PriorityLaneFigures(
    string Priority, long Pending, long InFlight, DateTimeOffset? OldestPending, long CompletedLast5Minutes, long CompletedLastHour, long BatchesLastHour);

/// <summary>
/// Backlog, oldest age and throughput per priority lane (issue 15) for <c>status</c> and the gauges, read from the view
/// <c>ops_priority_lanes</c> (migration PriorityLanes). Always three rows, High, Normal, Bulk.
/// </summary>
internal static class PriorityLaneReport
{
    private const string Sql = """
        SELECT priority, pending, in_flight, oldest_pending_at, completed_last_5_minutes, completed_last_hour, batches_last_hour
        FROM ops_priority_lanes
        """;

    /// <summary>Reads the three lanes in one round trip.</summary>
    /// <exception cref="NpgsqlException">The database cannot be reached or is not migrated.</exception>
    public static async Task<IReadOnlyList<PriorityLaneFigures>> LoadAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        await using var command = dataSource.CreateCommand(Sql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAllAsync(
            row => new PriorityLaneFigures(
                row.GetString(0),
                row.GetInt64(1),
                row.GetInt64(2),
                row.IsDBNull(3) ? null : row.GetFieldValue<DateTimeOffset>(3),
                row.GetInt64(4),
                row.GetInt64(5),
                row.GetInt64(6)),
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes the lanes as one table: pending, in flight, oldest pending age, completed per second (last 5
    /// minutes) and in the last hour, batches in the last hour.</summary>
    public static void Render(IAnsiConsole console, IReadOnlyList<PriorityLaneFigures> lanes, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(lanes);
        if (lanes.Count == 0)
        {
            return;
        }

        var table = new Table().Title("Priority lanes")
            .AddColumns("priority", "pending", "in flight", "oldest pending", "done/s (5 min)", "done (last hour)", "batches (last hour)");
        foreach (var lane in lanes)
        {
            table.AddRow(new IRenderable[]
            {
                new Text(lane.Priority.ToLowerInvariant()),
                new Text(N(lane.Pending)),
                new Text(N(lane.InFlight)),
                new Text(lane.OldestPending is { } oldest ? Seconds(now - oldest) : "-"),
                new Text((lane.CompletedLast5Minutes / 300.0).ToString("F1", CultureInfo.InvariantCulture)),
                new Text(N(lane.CompletedLastHour)),
                new Text(N(lane.BatchesLastHour)),
            });
        }

        console.Write(table);
    }

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Seconds(TimeSpan age) =>
        (age < TimeSpan.Zero ? 0 : age.TotalSeconds).ToString("F0", CultureInfo.InvariantCulture) + " s";
}
