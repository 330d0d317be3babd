using System.Globalization;
using Worker.Benchmarks;
using Worker.Benchmarks.Scenarios;
using Worker.Testing;

// Usage: Worker.Benchmarks [all | scenario ...] [--key=value ...]; `all` (or no scenario name) runs them all.
// Services come from TEST_POSTGRES / TEST_RABBITMQ / TEST_RABBITMQ_MANAGEMENT (scripts/services-up.sh).
IScenario[] all = [new IngestScenario(), new DrainScenario(), new CompareScenario(), new LatencyScenario(), new PriorityScenario(), new RssScenario()];

var names = args.Where(a => !a.StartsWith("--", StringComparison.Ordinal) && !a.Equals("all", StringComparison.OrdinalIgnoreCase))
    .ToHashSet(StringComparer.OrdinalIgnoreCase);
var options = args.Where(a => a.StartsWith("--", StringComparison.Ordinal) && a.Contains('=', StringComparison.Ordinal))
    .Select(a => a[2..].Split('=', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.OrdinalIgnoreCase);
var selected = names.Count == 0 ? all : all.Where(s => names.Contains(s.Name)).ToArray();
var unknown = names.Except(all.Select(s => s.Name), StringComparer.OrdinalIgnoreCase).ToList();
if (unknown.Count > 0)
{
    Console.Error.WriteLine($"Unknown scenario(s): {string.Join(", ", unknown)}. Known: {string.Join(", ", all.Select(s => $"{s.Name} ({s.Description})"))}");
    return 2;
}

var context = new ScenarioContext(await TestServices.GetAsync(), options);
var rows = new List<ResultRow>();
foreach (var scenario in selected)
{
    Console.Error.WriteLine($"== {scenario.Name}: {scenario.Description}");
    rows.AddRange(await scenario.RunAsync(context, CancellationToken.None));
}

string[] header = ["scenario", "metric", "value", "note"];
var table = rows.Select(r => new[] { r.Scenario, r.Metric, r.Value, r.Note }).ToList();
var widths = Enumerable.Range(0, header.Length).Select(i => Math.Max(header[i].Length, table.Count == 0 ? 0 : table.Max(r => r[i].Length))).ToArray();
Console.WriteLine("| " + string.Join(" | ", header.Select((h, i) => h.PadRight(widths[i]))) + " |");
Console.WriteLine("|" + string.Join("|", widths.Select(w => new string('-', w + 2))) + "|");
foreach (var row in table)
{
    Console.WriteLine("| " + string.Join(" | ", row.Select((c, i) => c.PadRight(widths[i]))) + " |");
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"({Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)"));
return 0;
