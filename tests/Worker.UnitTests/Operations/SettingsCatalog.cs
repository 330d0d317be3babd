using System.Collections;
using System.Reflection;
using Worker.Host;

namespace Worker.UnitTests.Operations;

/// <summary>The settings the worker reads: every options class (a type with a <c>SectionName</c> constant) and its properties.</summary>
internal static class SettingsCatalog
{
    /// <summary>Names read outside options classes: the connection string and the framework's own prefixes.</summary>
    private static readonly string[] FrameworkPrefixes = ["Logging__", "ASPNETCORE_", "DOTNET_"];

    public static IReadOnlyList<Type> OptionsTypes { get; } = typeof(WorkerHost).Assembly.GetTypes()
        .Where(t => t.GetField("SectionName", BindingFlags.Public | BindingFlags.Static) is { IsLiteral: true })
        .OrderBy(t => t.FullName, StringComparer.Ordinal)
        .ToList();

    public static string SectionName(Type optionsType) =>
        (string)optionsType.GetField("SectionName", BindingFlags.Public | BindingFlags.Static)!.GetRawConstantValue()!;

    /// <summary>True when the environment variable <paramref name="name"/> binds to something the worker reads.</summary>
    public static bool Binds(string name)
    {
        if (name is "ConnectionStrings__Postgres" or "Urls" || FrameworkPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal)))
        {
            return true;
        }

        var parts = name.Split("__");
        var optionsType = OptionsTypes.FirstOrDefault(t => SectionName(t) == parts[0]);
        if (optionsType is null || parts.Length < 2)
        {
            return false;
        }

        var current = optionsType;
        foreach (var part in parts[1..])
        {
            var property = current.GetProperty(part, BindingFlags.Public | BindingFlags.Instance);
            if (property is null || (!property.CanWrite && !typeof(IEnumerable).IsAssignableFrom(property.PropertyType)))
            {
                return false;
            }

            current = property.PropertyType;
        }

        return true;
    }
}
