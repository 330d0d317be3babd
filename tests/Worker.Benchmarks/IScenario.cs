namespace Worker.Benchmarks;

/// <summary>One benchmark scenario, selected on the command line by <see cref="Name"/>.</summary>
internal interface IScenario
{
    /// <summary>Command-line name, e.g. <c>ingest</c>.</summary>
    string Name { get; }

    /// <summary>One line saying what is measured.</summary>
    string Description { get; }

    /// <summary>Runs against the services of <paramref name="context"/> and returns the rows of the result table.</summary>
    Task<IReadOnlyList<ResultRow>> RunAsync(ScenarioContext context, CancellationToken cancellationToken);
}

/// <summary>One row of the printed table.</summary>
/// <param name="Scenario">Scenario name.</param>
/// <param name="Metric">What was measured.</param>
/// <param name="Value">The figure.</param>
/// <param name="Note">Unit, target or conditions.</param>
internal sealed record ResultRow(string Scenario, string Metric, string Value, string Note);

/// <summary>What every scenario gets: the shared test services and the command-line options (<c>--key=value</c>).</summary>
internal sealed class ScenarioContext(Worker.Testing.TestServices services, IReadOnlyDictionary<string, string> options)
{
    public Worker.Testing.TestServices Services { get; } = services;

    public string? GetString(string key) => options.TryGetValue(key, out var value) ? value : null;

    public int GetInt(string key, int fallback) =>
        options.TryGetValue(key, out var value) ? int.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : fallback;
}
