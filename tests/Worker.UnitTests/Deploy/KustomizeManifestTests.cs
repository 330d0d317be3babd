using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Worker.Host;
using Worker.Host.Operations;
using Worker.UnitTests.Operations;
using YamlDotNet.RepresentationModel;

namespace Worker.UnitTests.Deploy;

/// <summary>
/// Renders <c>deploy/</c> with <c>kubectl kustomize</c> and checks it against what the worker really maps and reads.
/// Needs kubectl on PATH (or KUBECTL); fails, never skips, without it.
/// </summary>
public sealed class KustomizeManifestTests
{
    public static TheoryData<string> Kustomizations() => new() { "deploy/base", "deploy/overlays/example" };

    [Theory]
    [MemberData(nameof(Kustomizations))]
    public void Probes_and_ports_match_the_endpoints_the_worker_maps(string path)
    {
        var deployment = Single(Render(path), "Deployment");
        var pod = Map(Map(Map(deployment, "spec"), "template"), "spec");
        var container = Map(Seq(pod, "containers")[0]);
        var httpPort = Seq(container, "ports").Select(Map).Single(p => Str(p, "name") == "http");
        Assert.Equal(HealthEndpoints.HttpPort.ToString(CultureInfo.InvariantCulture), Str(httpPort, "containerPort"));
        Assert.Equal(HealthEndpoints.HttpPort, AppSettingsPort());

        Assert.Equal(HealthEndpoints.LivePath, Str(Map(Map(container, "livenessProbe"), "httpGet"), "path"));
        Assert.Equal(HealthEndpoints.ReadyPath, Str(Map(Map(container, "readinessProbe"), "httpGet"), "path"));
        Assert.Equal(HealthEndpoints.LivePath, Str(Map(Map(container, "startupProbe"), "httpGet"), "path"));
        foreach (var probe in new[] { "livenessProbe", "readinessProbe", "startupProbe" })
        {
            Assert.Equal("http", Str(Map(Map(container, probe), "httpGet"), "port"));
        }

        // The readiness probe must outlast one health check's own time limit.
        var readinessTimeout = int.Parse(Str(Map(container, "readinessProbe"), "timeoutSeconds"), CultureInfo.InvariantCulture);
        Assert.True(readinessTimeout > new OperationsOptions().HealthCheckTimeout.TotalSeconds);

        var annotations = Map(Map(Map(Map(deployment, "spec"), "template"), "metadata"), "annotations");
        Assert.Equal(HealthEndpoints.MetricsPath, Str(annotations, "prometheus.io/path"));
        Assert.Equal(HealthEndpoints.HttpPort.ToString(CultureInfo.InvariantCulture), Str(annotations, "prometheus.io/port"));

        var service = Single(Render(path), "Service");
        Assert.Equal("http", Str(Map(Seq(Map(service, "spec"), "ports")[0]), "targetPort"));
        Assert.Equal(HealthEndpoints.MetricsPath, Str(Map(Map(service, "metadata"), "annotations"), "prometheus.io/path"));
    }

    [Theory]
    [MemberData(nameof(Kustomizations))]
    public void Every_environment_variable_binds_to_a_setting_the_worker_reads(string path)
    {
        var documents = Render(path);
        var configMap = Single(documents, "ConfigMap");
        var names = Map(configMap, "data").Children.Keys.Select(k => ((YamlScalarNode)k).Value!).ToList();
        names.AddRange(SecretTemplateKeys());
        foreach (var workload in documents.Where(d => Kind(d) is "Deployment" or "Job"))
        {
            foreach (var container in Seq(Map(Map(Map(workload, "spec"), "template"), "spec"), "containers").Select(Map))
            {
                if (container.Children.ContainsKey("env"))
                {
                    names.AddRange(Seq(container, "env").Select(e => Str(Map(e), "name")));
                }
            }
        }

        var unknown = names.Where(n => !SettingsCatalog.Binds(n)).ToList();
        Assert.True(unknown.Count == 0, $"Not read by the worker: {string.Join(", ", unknown)}");
        Assert.Contains("RabbitMq__UseQuorumQueues", names);
        Assert.Equal("true", Str(Map(configMap, "data"), "RabbitMq__UseQuorumQueues"));
    }

    [Theory]
    [MemberData(nameof(Kustomizations))]
    public void Workloads_read_the_config_map_and_the_secret_of_the_template(string path)
    {
        var documents = Render(path);
        var configMapName = Str(Map(Single(documents, "ConfigMap"), "metadata"), "name");
        foreach (var workload in documents.Where(d => Kind(d) is "Deployment" or "Job"))
        {
            var container = Map(Seq(Map(Map(Map(workload, "spec"), "template"), "spec"), "containers")[0]);
            var sources = Seq(container, "envFrom").Select(Map).ToList();
            Assert.Contains(sources, s => s.Children.ContainsKey("configMapRef") && Str(Map(s, "configMapRef"), "name") == configMapName);
            Assert.Contains(sources, s => s.Children.ContainsKey("secretRef") && Str(Map(s, "secretRef"), "name") == SecretTemplateName());
        }

        Assert.DoesNotContain(documents, d => Kind(d) == "Secret");
        Assert.Contains("ConnectionStrings__Postgres", SecretTemplateKeys());
        Assert.Contains("RabbitMq__Password", SecretTemplateKeys());
    }

    [Theory]
    [MemberData(nameof(Kustomizations))]
    public void The_grace_period_exceeds_the_shutdown_timeout_and_the_pods_run_locked_down(string path)
    {
        var documents = Render(path);
        var deployment = Single(documents, "Deployment");
        Assert.Equal("2", Str(Map(deployment, "spec"), "replicas"));
        var pod = Map(Map(Map(deployment, "spec"), "template"), "spec");
        var grace = int.Parse(Str(pod, "terminationGracePeriodSeconds"), CultureInfo.InvariantCulture);
        var data = Map(Single(documents, "ConfigMap"), "data");
        var shutdown = data.Children.ContainsKey("Operations__ShutdownTimeout")
            ? TimeSpan.Parse(Str(data, "Operations__ShutdownTimeout"), CultureInfo.InvariantCulture)
            : new OperationsOptions().ShutdownTimeout;
        Assert.True(grace >= shutdown.TotalSeconds + 5, $"terminationGracePeriodSeconds {grace} must exceed Operations__ShutdownTimeout {shutdown.TotalSeconds} s with a margin.");

        var job = Single(documents, "Job");
        foreach (var (workload, command) in new[] { (deployment, "run"), (job, "migrate") })
        {
            var spec = Map(Map(Map(workload, "spec"), "template"), "spec");
            Assert.Equal("true", Str(Map(spec, "securityContext"), "runAsNonRoot"));
            var container = Map(Seq(spec, "containers")[0]);
            Assert.Equal(command, Str(Seq(container, "args")[0]));
            Assert.Contains(WorkerCommands.Create().Subcommands, c => c.Name == command);
            var security = Map(container, "securityContext");
            Assert.Equal("true", Str(security, "readOnlyRootFilesystem"));
            Assert.Equal("false", Str(security, "allowPrivilegeEscalation"));
            Assert.Equal("ALL", Str(Seq(Map(security, "capabilities"), "drop")[0]));
            var tmp = Seq(container, "volumeMounts").Select(Map).Single(m => Str(m, "mountPath") == "/tmp");
            var volume = Seq(spec, "volumes").Select(Map).Single(v => Str(v, "name") == Str(tmp, "name"));
            Assert.True(volume.Children.ContainsKey("emptyDir"));
            Assert.True(Map(container, "resources").Children.ContainsKey("limits"));
        }

        var budget = Single(documents, "PodDisruptionBudget");
        var budgetSelector = Map(Map(Map(budget, "spec"), "selector"), "matchLabels");
        var deploymentSelector = Map(Map(Map(deployment, "spec"), "selector"), "matchLabels");
        Assert.Equal(deploymentSelector.Children.Count, budgetSelector.Children.Count);
        Assert.All(deploymentSelector.Children, pair => Assert.Equal(((YamlScalarNode)pair.Value).Value, Str(budgetSelector, ((YamlScalarNode)pair.Key).Value!)));
    }

    [Fact]
    public void The_Dockerfile_and_appsettings_use_the_same_port()
    {
        var dockerfile = File.ReadAllText(Path.Combine(RepositoryRoot(), "src/Worker.Host/Dockerfile"));
        Assert.Contains($"EXPOSE {HealthEndpoints.HttpPort}", dockerfile, StringComparison.Ordinal);
        Assert.Contains($"Urls=http://+:{HealthEndpoints.HttpPort}", dockerfile, StringComparison.Ordinal);
        Assert.Contains("USER $APP_UID", dockerfile, StringComparison.Ordinal);
    }

    /// <summary>The documents <c>kubectl kustomize</c> renders for <paramref name="path"/> (relative to the repository root).</summary>
    internal static List<YamlMappingNode> Render(string path)
    {
        var kubectl = Environment.GetEnvironmentVariable("KUBECTL") is { Length: > 0 } configured ? configured : "kubectl";
        var start = new ProcessStartInfo(kubectl, ["kustomize", Path.Combine(RepositoryRoot(), path)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {kubectl}.");
        var errors = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"kubectl kustomize {path} failed: {errors.Result}");
        return Parse(output);
    }

    private static List<YamlMappingNode> Parse(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>().ToList();
    }

    private static string SecretTemplateName() =>
        Str(Map(Parse(File.ReadAllText(Path.Combine(RepositoryRoot(), "deploy/base/secret.template.yaml"))).Single(), "metadata"), "name");

    private static List<string> SecretTemplateKeys()
    {
        var secret = Parse(File.ReadAllText(Path.Combine(RepositoryRoot(), "deploy/base/secret.template.yaml"))).Single();
        Assert.Equal("Secret", Kind(secret));
        var values = Map(secret, "stringData");
        Assert.All(values.Children.Values, v => Assert.Equal(string.Empty, ((YamlScalarNode)v).Value));
        return values.Children.Keys.Select(k => ((YamlScalarNode)k).Value!).ToList();
    }

    private static int AppSettingsPort()
    {
        using var settings = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepositoryRoot(), "src/Worker.Host/appsettings.json")));
        return new Uri(settings.RootElement.GetProperty("Urls").GetString()!.Replace("0.0.0.0", "localhost", StringComparison.Ordinal)).Port;
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Worker.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("Worker.sln not found above " + AppContext.BaseDirectory);
    }

    private static string Kind(YamlMappingNode document) => Str(document, "kind");

    // The monitoring component adds the Grafana dashboard's ConfigMap; the worker's own objects are the others.
    private static YamlMappingNode Single(List<YamlMappingNode> documents, string kind) =>
        Assert.Single(documents, d => Kind(d) == kind && !IsDashboard(d));

    private static bool IsDashboard(YamlMappingNode document) =>
        Map(document, "metadata").Children.TryGetValue(new YamlScalarNode("labels"), out var labels)
        && ((YamlMappingNode)labels).Children.ContainsKey(new YamlScalarNode("grafana_dashboard"));

    private static YamlMappingNode Map(YamlNode node) => Assert.IsType<YamlMappingNode>(node);

    private static YamlMappingNode Map(YamlMappingNode node, string key) => Assert.IsType<YamlMappingNode>(Child(node, key));

    private static IList<YamlNode> Seq(YamlMappingNode node, string key) => Assert.IsType<YamlSequenceNode>(Child(node, key)).Children;

    private static string Str(YamlMappingNode node, string key) => Str(Child(node, key));

    private static string Str(YamlNode node) => Assert.IsType<YamlScalarNode>(node).Value ?? string.Empty;

    private static YamlNode Child(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : throw new Xunit.Sdk.XunitException($"Missing key '{key}'.");
}
