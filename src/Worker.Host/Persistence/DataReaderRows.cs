using Npgsql;

namespace Worker.Host.Persistence;

/// <summary>The read loop of a SQL result set, written once.</summary>
internal static class DataReaderRows
{
    /// <summary>Reads every remaining row of the current result set, mapping each with <paramref name="map"/>.</summary>
    /// <param name="reader">A reader positioned before the first row of the result set.</param>
    /// <param name="map">Builds one item from the current row (read columns by ordinal).</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The items in row order (empty when the result set has no rows).</returns>
    public static async Task<List<T>> ReadAllAsync<T>(this NpgsqlDataReader reader, Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(map);
        var items = new List<T>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            items.Add(map(reader));
        }

        return items;
    }
}
