using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Worker.UnitTests.Deploy;

/// <summary>
/// <c>deploy/monitoring</c>: the alert rules pass their <c>promtool test rules</c> unit tests, every alert has a unit test
/// and a runbook section, the Grafana dashboard is well formed, and the kustomize component is off in the base and on in
/// the example overlay. Needs promtool (Debian package <c>prometheus</c>, installed by <c>scripts/prometheus-up.sh</c>,
/// which <c>scripts/test.sh</c> runs) on PATH or in PROMTOOL; fails, never skips, without it.
/// </summary>
public sealed partial class MonitoringTests
{
    private static readonly string[] GrafanaBuiltIns = ["__rate_interval", "__interval", "__range"];

    [Fact]
    public void Alert_rules_pass_their_promtool_unit_tests()
    {
        var directory = Directory.CreateTempSubdirectory("rules-test-");
        try
        {
            var rules = Run("bash", [Repo("scripts/monitoring-rules.sh")]);
            Assert.True(rules.ExitCode == 0, rules.Output);
            File.WriteAllText(Path.Combine(directory.FullName, "rules.yaml"), rules.Output);
            File.Copy(Repo("deploy/monitoring/tests/rules.test.yaml"), Path.Combine(directory.FullName, "rules.test.yaml"));

            var check = Run(Promtool(), ["check", "rules", Path.Combine(directory.FullName, "rules.yaml")]);
            Assert.True(check.ExitCode == 0, check.Output);
            Assert.Contains($"SUCCESS: {AlertRules().Count} rules found", check.Output, StringComparison.Ordinal);

            var test = Run(Promtool(), ["test", "rules", Path.Combine(directory.FullName, "rules.test.yaml")]);
            Assert.True(test.ExitCode == 0, test.Output);
            Assert.Contains("SUCCESS", test.Output, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void Every_alert_has_a_unit_test_a_severity_and_a_runbook_section()
    {
        var tests = File.ReadAllText(Repo("deploy/monitoring/tests/rules.test.yaml"));
        var anchors = Headings().Select(Slug).ToHashSet(StringComparer.Ordinal);
        var alerts = AlertRules();
        Assert.True(alerts.Count >= 10, $"{alerts.Count} alerts");
        foreach (var rule in alerts)
        {
            var name = Str(rule, "alert");
            Assert.Contains($"alertname: {name}\n", tests, StringComparison.Ordinal);
            Assert.Contains(Str(Map(rule, "labels"), "severity"), new[] { "warning", "critical" });
            var url = Str(Map(rule, "annotations"), "runbook_url");
            var anchor = Assert.Single(Regex.Matches(url, @"/docs/RUNBOOK\.md#([a-z0-9-]+)$")).Groups[1].Value;
            Assert.True(anchors.Contains(anchor), $"{name}: docs/RUNBOOK.md has no section #{anchor}");
            Assert.Equal(name.ToLowerInvariant(), anchor);
        }
    }

    [Fact]
    public void Dashboard_is_a_Grafana_dashboard_whose_queries_use_defined_variables_and_listed_series()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Repo("deploy/monitoring/grafana-dashboard.json")));
        var dashboard = json.RootElement;
        Assert.False(string.IsNullOrWhiteSpace(dashboard.GetProperty("title").GetString()));
        Assert.Matches("^[a-z0-9-]{1,40}$", dashboard.GetProperty("uid").GetString());
        Assert.True(dashboard.GetProperty("schemaVersion").GetInt32() >= 36);

        var variables = dashboard.GetProperty("templating").GetProperty("list").EnumerateArray().ToList();
        var datasource = Assert.Single(variables, v => v.GetProperty("type").GetString() == "datasource");
        Assert.Equal("prometheus", datasource.GetProperty("query").GetString());
        var names = variables.Select(v => v.GetProperty("name").GetString()!).Concat(GrafanaBuiltIns).ToHashSet(StringComparer.Ordinal);

        var readme = File.ReadAllText(Repo("README.md"));
        var panels = dashboard.GetProperty("panels").EnumerateArray().ToList();
        Assert.True(panels.Count >= 8, $"{panels.Count} panels");
        Assert.Equal(panels.Count, panels.Select(p => p.GetProperty("id").GetInt32()).Distinct().Count());
        foreach (var panel in panels)
        {
            var title = panel.GetProperty("title").GetString();
            Assert.False(string.IsNullOrWhiteSpace(title));
            Assert.Contains(panel.GetProperty("type").GetString(), new[] { "timeseries", "stat", "gauge", "table", "bargauge" });
            Assert.Equal("${datasource}", panel.GetProperty("datasource").GetProperty("uid").GetString());
            var grid = panel.GetProperty("gridPos");
            Assert.True(grid.GetProperty("x").GetInt32() + grid.GetProperty("w").GetInt32() <= 24, $"{title}: wider than the 24-column grid");
            Assert.True(grid.GetProperty("h").GetInt32() > 0 && grid.GetProperty("y").GetInt32() >= 0, title);

            var targets = panel.GetProperty("targets").EnumerateArray().ToList();
            Assert.NotEmpty(targets);
            Assert.Equal(targets.Count, targets.Select(t => t.GetProperty("refId").GetString()).Distinct().Count());
            foreach (var expr in targets.Select(t => t.GetProperty("expr").GetString()!))
            {
                Assert.False(string.IsNullOrWhiteSpace(expr), title);
                foreach (Match variable in Variable().Matches(expr))
                {
                    Assert.True(names.Contains(variable.Groups[1].Value), $"{title}: ${variable.Groups[1].Value} is not a dashboard variable");
                }

                Assert.NotEmpty(SeriesNames(expr));
                foreach (var series in SeriesNames(expr))
                {
                    Assert.True(readme.Contains($"`{series}`", StringComparison.Ordinal), $"{title}: {series} is not a series listed in README.md");
                }
            }
        }
    }

    [Fact]
    public void Monitoring_component_is_off_in_the_base_and_on_in_the_example_overlay()
    {
        Assert.DoesNotContain(KustomizeManifestTests.Render("deploy/base"), d => Kind(d) is "PrometheusRule" or "ServiceMonitor");

        var overlay = KustomizeManifestTests.Render("deploy/overlays/example");
        var rule = Assert.Single(overlay, d => Kind(d) == "PrometheusRule");
        Assert.Equal("gong-flow-worker", Str(Map(rule, "metadata"), "namespace"));
        Assert.Equal(AlertRules().Count, Seq(Map(Seq(Map(rule, "spec"), "groups")[0]), "rules").Count);

        // The ServiceMonitor selects the metrics Service by its labels and scrapes the port and path the worker serves.
        var monitor = Assert.Single(overlay, d => Kind(d) == "ServiceMonitor");
        var service = Assert.Single(overlay, d => Kind(d) == "Service");
        var serviceLabels = Map(Map(service, "metadata"), "labels");
        Assert.All(Map(Map(Map(monitor, "spec"), "selector"), "matchLabels").Children,
            pair => Assert.Equal(Str(pair.Value), Str(serviceLabels, Str(pair.Key))));
        var endpoint = Map(Seq(Map(monitor, "spec"), "endpoints")[0]);
        Assert.Contains(Seq(Map(service, "spec"), "ports").Select(Map), p => Str(p, "name") == Str(endpoint, "port"));
        Assert.Equal(Worker.Host.Operations.HealthEndpoints.MetricsPath, Str(endpoint, "path"));

        // The Grafana sidecar loads ConfigMaps labelled grafana_dashboard; the data is the dashboard file as it is.
        var dashboard = Assert.Single(overlay, d => Kind(d) == "ConfigMap" && Map(d, "metadata").Children.ContainsKey(new YamlScalarNode("labels"))
            && Map(Map(d, "metadata"), "labels").Children.ContainsKey(new YamlScalarNode("grafana_dashboard")));
        Assert.Equal("1", Str(Map(Map(dashboard, "metadata"), "labels"), "grafana_dashboard"));
        Assert.Equal(File.ReadAllText(Repo("deploy/monitoring/grafana-dashboard.json")), Str(Map(dashboard, "data"), "gong-flow-worker.json"));
    }

    /// <summary>The metric names an expression selects (histogram suffixes removed), e.g. <c>flow_assignment_batch_fill</c>.</summary>
    internal static IReadOnlyList<string> SeriesNames(string expr) =>
        [.. SeriesName().Matches(expr).Select(m => Regex.Replace(m.Value, "_(bucket|sum|count)$", string.Empty)).Distinct()];

    private static List<YamlMappingNode> AlertRules()
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(Repo("deploy/monitoring/prometheusrule.yaml"))));
        var root = (YamlMappingNode)stream.Documents.Single().RootNode;
        return [.. Seq(Map(root, "spec"), "groups").Select(Map).SelectMany(g => Seq(g, "rules").Select(Map)).Where(r => r.Children.ContainsKey(new YamlScalarNode("alert")))];
    }

    private static IEnumerable<string> Headings() =>
        File.ReadAllLines(Repo("docs/RUNBOOK.md")).Where(l => l.StartsWith('#')).Select(l => l.TrimStart('#').Trim());

    // GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
    private static string Slug(string heading) =>
        Regex.Replace(heading.ToLowerInvariant(), @"[^a-z0-9 _-]", string.Empty).Replace(' ', '-');

    private static string Promtool()
    {
        if (Environment.GetEnvironmentVariable("PROMTOOL") is { Length: > 0 } configured)
        {
            return configured;
        }

        var found = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, "promtool")).FirstOrDefault(File.Exists);
        Assert.True(found is not null, "promtool not found: install the Debian package prometheus (scripts/prometheus-up.sh) or set PROMTOOL.");
        return found!;
    }

    private static (int ExitCode, string Output) Run(string file, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {file}.");
        var errors = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output + errors.Result);
    }

    private static string Repo(string relative)
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Worker.sln")))
            {
                return Path.Combine(directory.FullName, relative);
            }
        }

        throw new InvalidOperationException("Worker.sln not found above " + AppContext.BaseDirectory);
    }

    private static string Kind(YamlMappingNode document) => Str(document, "kind");

    private static YamlMappingNode Map(YamlNode node) => Assert.IsType<YamlMappingNode>(node);

    private static YamlMappingNode Map(YamlMappingNode node, string key) => Assert.IsType<YamlMappingNode>(node.Children[new YamlScalarNode(key)]);

    private static IList<YamlNode> Seq(YamlMappingNode node, string key) => Assert.IsType<YamlSequenceNode>(node.Children[new YamlScalarNode(key)]).Children;

    private static string Str(YamlMappingNode node, string key) => Str(node.Children[new YamlScalarNode(key)]);

    private static string Str(YamlNode node) => Assert.IsType<YamlScalarNode>(node).Value ?? string.Empty;

    [GeneratedRegex(@"\$\{?([A-Za-z_][A-Za-z0-9_]*)")]
    private static partial Regex Variable();

    [GeneratedRegex("flow_assignment_[a-z_]+")]
    private static partial Regex SeriesName();
}
