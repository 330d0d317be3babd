using System.Reflection;
using System.Text.Json;
using Worker.Contracts;

namespace Worker.UnitTests.Ingest;

/// <summary>The checked-in JSON Schemas (contracts/) must describe the records exactly: names, types, enums, required.</summary>
public sealed class ContractSchemaTests
{
    [Fact]
    public void AssignProspectsToFlow_schema_matches_the_record() =>
        AssertMatches(typeof(AssignProspectsToFlow), Schema("AssignProspectsToFlow.schema.json"), Schema("AssignProspectsToFlow.schema.json"));

    [Fact]
    public void FlowAssignmentCompleted_schema_matches_the_record() =>
        AssertMatches(typeof(FlowAssignmentCompleted), Schema("FlowAssignmentCompleted.schema.json"), Schema("FlowAssignmentCompleted.schema.json"));

    [Fact]
    public void ProspectOutcome_schema_matches_the_record()
    {
        var root = Schema("FlowAssignmentCompleted.schema.json");
        AssertMatches(typeof(ProspectOutcome), root.GetProperty("$defs").GetProperty(nameof(ProspectOutcome)), root);
    }

    [Fact]
    public void AsyncAPI_document_names_both_exchanges_and_schemas()
    {
        var text = File.ReadAllText(Path.Combine(ContractsDirectory(), "asyncapi.yaml"));
        Assert.Contains("address: 'Worker.Contracts:AssignProspectsToFlow'", text, StringComparison.Ordinal);
        Assert.Contains("address: 'Worker.Contracts:FlowAssignmentCompleted'", text, StringComparison.Ordinal);
        Assert.Contains("$ref: './AssignProspectsToFlow.schema.json'", text, StringComparison.Ordinal);
        Assert.Contains("$ref: './FlowAssignmentCompleted.schema.json'", text, StringComparison.Ordinal);
    }

    private static void AssertMatches(Type record, JsonElement schema, JsonElement root)
    {
        // Positional parameters (required unless they have a default) and init-only properties (always optional: added
        // later without changing the constructor, e.g. priority).
        var parameters = record.GetConstructors().Single().GetParameters();
        var members = parameters.Select(p => (Name: p.Name!, Type: p.ParameterType, Optional: p.HasDefaultValue))
            .Concat(record.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Where(p => p.SetMethod is { IsPublic: true } && parameters.All(a => a.Name != p.Name))
                .Select(p => (Name: p.Name, Type: p.PropertyType, Optional: true)))
            .ToList();
        var properties = schema.GetProperty("properties");
        var schemaNames = properties.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal).ToList();
        var recordNames = members.Select(m => JsonNamingPolicy.CamelCase.ConvertName(m.Name)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(recordNames, schemaNames);

        var required = schema.GetProperty("required").EnumerateArray().Select(e => e.GetString()!).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(members.Where(m => !m.Optional).Select(m => JsonNamingPolicy.CamelCase.ConvertName(m.Name)).Order(StringComparer.Ordinal), required);

        foreach (var member in members)
        {
            var name = JsonNamingPolicy.CamelCase.ConvertName(member.Name);
            AssertType(member.Type, properties.GetProperty(name), root, $"{record.Name}.{name}");
        }
    }

    private static void AssertType(Type type, JsonElement property, JsonElement root, string where)
    {
        if (property.TryGetProperty("$ref", out var reference))
        {
            var target = reference.GetString()!.Split('/').Last();
            Assert.True(type.Name == target, $"{where}: schema refers to {target}, record has {type.Name}");
            Assert.True(root.GetProperty("$defs").TryGetProperty(target, out _), $"{where}: $defs lacks {target}");
            return;
        }

        var types = property.GetProperty("type") switch
        {
            { ValueKind: JsonValueKind.Array } array => array.EnumerateArray().Select(t => t.GetString()!).Where(t => t != "null").ToList(),
            var single => [single.GetString()!],
        };
        var expected = type switch
        {
            _ when type == typeof(string) => "string",
            _ when type == typeof(DateTimeOffset) => "string",
            _ when type.IsEnum => "string",
            _ when type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IReadOnlyList<>) => "array",
            _ => throw new InvalidOperationException($"{where}: no schema mapping for {type}"),
        };
        Assert.True(types.SequenceEqual([expected]), $"{where}: schema says {string.Join('|', types)}, record has {type.Name}");

        if (type == typeof(DateTimeOffset))
        {
            Assert.Equal("date-time", property.GetProperty("format").GetString());
        }

        if (type.IsEnum)
        {
            Assert.Equal(Enum.GetNames(type), property.GetProperty("enum").EnumerateArray().Select(e => e.GetString()!));
        }

        if (expected == "array")
        {
            AssertType(type.GetGenericArguments()[0], property.GetProperty("items"), root, where + "[]");
        }
    }

    private static JsonElement Schema(string file) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(ContractsDirectory(), file))).RootElement;

    private static string ContractsDirectory()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Worker.sln")))
        {
            directory = directory.Parent;
        }

        return Path.Combine(directory?.FullName ?? throw new DirectoryNotFoundException("Worker.sln not found above the test binaries."), "contracts");
    }
}
