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

    /// <summary>Peak RSS of the worker measured by the <c>rss</c> benchmark with 1,000,000 pending prospects (README, "Benchmarks").</summary>
    private const int MeasuredPeakRssMiB = 268;

    [Theory]
    [MemberData(nameof(Kustomizations))]
    public void Pods_spread_across_nodes_the_budget_lets_unhealthy_pods_go_and_memory_is_requested_above_the_measured_peak(string path)
    {
        var documents = Render(path);
        var deployment = Single(documents, "Deployment");
        var selector = Map(Map(Map(deployment, "spec"), "selector"), "matchLabels");
        var pod = Map(Map(Map(deployment, "spec"), "template"), "spec");
        var spread = Seq(pod, "topologySpreadConstraints").Select(Map).ToList();
        var byNode = Assert.Single(spread, c => Str(c, "topologyKey") == "kubernetes.io/hostname");
        Assert.Equal("1", Str(byNode, "maxSkew"));
        var spreadLabels = Map(Map(byNode, "labelSelector"), "matchLabels");
        Assert.All(spreadLabels.Children, pair => Assert.Equal(((YamlScalarNode)pair.Value).Value, Str(selector, ((YamlScalarNode)pair.Key).Value!)));

        Assert.Equal("AlwaysAllow", Str(Map(Single(documents, "PodDisruptionBudget"), "spec"), "unhealthyPodEvictionPolicy"));

        var resources = Map(Map(Seq(pod, "containers")[0]), "resources");
        var request = MiB(Str(Map(resources, "requests"), "memory"));
        var limit = MiB(Str(Map(resources, "limits"), "memory"));
        Assert.True(request > MeasuredPeakRssMiB, $"memory request {request} MiB must exceed the measured peak RSS {MeasuredPeakRssMiB} MiB");
        Assert.True(limit > request, $"memory limit {limit} MiB must leave room above the request {request} MiB");
    }

    [Fact]
    public void The_config_map_is_generated_with_a_content_hash_so_a_changed_setting_rolls_the_pods()
    {
        var copy = Directory.CreateTempSubdirectory("deploy-");
        try
        {
            CopyDirectory(Path.Combine(RepositoryRoot(), "deploy"), copy.FullName);
            var before = ConfigMapReferences(Render(Path.Combine(copy.FullName, "overlays/example")));
            var env = Path.Combine(copy.FullName, "base/worker-config.env");
            var text = File.ReadAllText(env);
            Assert.Contains("Operations__DispatchStaleAfter=00:01:00", text, StringComparison.Ordinal);
            File.WriteAllText(env, text.Replace("Operations__DispatchStaleAfter=00:01:00", "Operations__DispatchStaleAfter=00:02:00", StringComparison.Ordinal));
            var after = ConfigMapReferences(Render(Path.Combine(copy.FullName, "overlays/example")));

            Assert.StartsWith("worker-config-", before.Name, StringComparison.Ordinal);
            Assert.All(before.References, r => Assert.Equal(before.Name, r));
            Assert.All(after.References, r => Assert.Equal(after.Name, r));
            Assert.NotEqual(before.Name, after.Name);
        }
        finally
        {
            copy.Delete(recursive: true);
        }
    }

    [Fact]
    public void Every_Dockerfile_FROM_is_pinned_by_digest_and_the_worker_runs_on_the_chiseled_runtime()
    {
        var dockerfiles = Directory.EnumerateFiles(RepositoryRoot(), "Dockerfile", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                        && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .ToList();
        Assert.Contains(dockerfiles, f => f.EndsWith("src/Worker.Host/Dockerfile", StringComparison.Ordinal));
        foreach (var file in dockerfiles)
        {
            var stages = new List<string>();
            foreach (var line in File.ReadLines(file).Select(l => l.Trim()).Where(l => l.StartsWith("FROM ", StringComparison.OrdinalIgnoreCase)))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(p => !p.StartsWith("--", StringComparison.Ordinal)).ToArray();
                var image = parts[1];
                if (!stages.Contains(image, StringComparer.Ordinal))
                {
                    Assert.Matches(@"^[a-z0-9./-]+(:[A-Za-z0-9._-]+)?@sha256:[0-9a-f]{64}$", image);
                }

                if (parts.Length >= 4 && parts[2].Equals("AS", StringComparison.OrdinalIgnoreCase))
                {
                    stages.Add(parts[3]);
                }
            }

            Assert.NotEmpty(stages);
        }

        var worker = File.ReadAllLines(Path.Combine(RepositoryRoot(), "src/Worker.Host/Dockerfile"));
        var runtime = worker.Last(l => l.TrimStart().StartsWith("FROM ", StringComparison.Ordinal));
        Assert.Contains("mcr.microsoft.com/dotnet/aspnet:", runtime, StringComparison.Ordinal);
        Assert.Contains("-chiseled@sha256:", runtime, StringComparison.Ordinal);
        Assert.DoesNotContain(worker, l => l.TrimStart().StartsWith("RUN ", StringComparison.Ordinal) && worker.ToList().IndexOf(l) > worker.ToList().IndexOf(runtime));
    }

    [Fact]
    public void Compose_checks_the_worker_with_its_healthcheck_subcommand_and_migrate_declares_the_topology_first()
    {
        var compose = Parse(File.ReadAllText(Path.Combine(RepositoryRoot(), "docker-compose.yml"))).Single();
        var services = Map(compose, "services");
        var worker = Map(services, "worker");
        var test = Seq(Map(worker, "healthcheck"), "test").Select(Str).ToList();
        Assert.Equal(["CMD", "dotnet", "Worker.Host.dll", "healthcheck"], test);
        Assert.Contains(WorkerCommands.Create().Subcommands, c => c.Name == "healthcheck");

        var migrate = Map(services, "migrate");
        Assert.Equal("migrate", Str(Seq(migrate, "command")[0]));
        Assert.True(Map(migrate, "depends_on").Children.ContainsKey(new YamlScalarNode("rabbitmq")), "migrate declares the broker topology, so it waits for RabbitMQ");
    }

    [Fact]
    public void The_image_carries_no_default_password()
    {
        var settings = File.ReadAllText(Path.Combine(RepositoryRoot(), "src/Worker.Host/appsettings.json"));
        Assert.DoesNotContain("Password", settings, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("AccessKey", settings, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(string.Empty, new Worker.Host.Messaging.RabbitMqOptions().Password);

        // The local defaults exist for Development only and are never published into the image.
        Assert.Contains("Password", File.ReadAllText(Path.Combine(RepositoryRoot(), "src/Worker.Host/appsettings.Development.json")), StringComparison.Ordinal);
        Assert.Contains("<Content Update=\"appsettings.Development.json\" CopyToPublishDirectory=\"Never\" />",
            File.ReadAllText(Path.Combine(RepositoryRoot(), "src/Worker.Host/Worker.Host.csproj")), StringComparison.Ordinal);
        Assert.Contains("appsettings.Development.json", File.ReadAllText(Path.Combine(RepositoryRoot(), ".dockerignore")), StringComparison.Ordinal);
    }

    private static (string Name, List<string> References) ConfigMapReferences(List<YamlMappingNode> documents)
    {
        var name = Str(Map(Single(documents, "ConfigMap"), "metadata"), "name");
        var references = documents.Where(d => Kind(d) is "Deployment" or "Job")
            .SelectMany(w => Seq(Map(Seq(Map(Map(Map(w, "spec"), "template"), "spec"), "containers")[0]), "envFrom").Select(Map))
            .Where(s => s.Children.ContainsKey("configMapRef"))
            .Select(s => Str(Map(s, "configMapRef"), "name"))
            .ToList();
        Assert.Equal(2, references.Count);
        return (name, references);
    }

    private static void CopyDirectory(string source, string target)
    {
        foreach (var directory in Directory.EnumerateDirectories(source, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(target, Path.GetRelativePath(source, directory)));
        }

        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, Path.Combine(target, Path.GetRelativePath(source, file)));
        }
    }

    private static int MiB(string quantity) => quantity switch
    {
        _ when quantity.EndsWith("Gi", StringComparison.Ordinal) => int.Parse(quantity[..^2], CultureInfo.InvariantCulture) * 1024,
        _ when quantity.EndsWith("Mi", StringComparison.Ordinal) => int.Parse(quantity[..^2], CultureInfo.InvariantCulture),
        _ => throw new Xunit.Sdk.XunitException($"Unexpected memory quantity '{quantity}' (use Mi or Gi)."),
    };

    /// <summary>The documents <c>kubectl kustomize</c> renders for <paramref name="path"/> (relative to the repository root).</summary>
    internal static List<YamlMappingNode> Render(string path)
    {
        var kubectl = Environment.GetEnvironmentVariable("KUBECTL") is { Length: > 0 } configured ? configured : "kubectl";
        var start = new ProcessStartInfo(kubectl, ["kustomize", Path.IsPathRooted(path) ? path : Path.Combine(RepositoryRoot(), path)])
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
