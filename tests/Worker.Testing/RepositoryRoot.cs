namespace Worker.Testing;

/// <summary>The repository checkout the tests run from (the folder holding <c>Worker.sln</c> above the test binaries).</summary>
public static class RepositoryRoot
{
    /// <summary>Absolute path of the repository root.</summary>
    /// <exception cref="DirectoryNotFoundException">No <c>Worker.sln</c> above <see cref="AppContext.BaseDirectory"/>.</exception>
    public static string Path { get; } = Find();

    /// <summary>An absolute path inside the repository, from parts relative to its root.</summary>
    public static string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    private static string Find()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(directory.FullName, "Worker.sln")))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException("Worker.sln not found above " + AppContext.BaseDirectory);
    }
}
