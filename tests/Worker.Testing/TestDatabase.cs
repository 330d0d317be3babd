using Npgsql;
using Worker.Persistence;

namespace Worker.Testing;

/// <summary>A migrated database owned by one test; dropped (forcibly) on dispose.</summary>
public sealed class TestDatabase : IAsyncDisposable
{
    private readonly TestServices services;

    internal TestDatabase(TestServices services, string name, string connectionString)
    {
        this.services = services;
        Name = name;
        ConnectionString = connectionString;
    }

    /// <summary>Database name.</summary>
    public string Name { get; }

    /// <summary>Npgsql connection string of this database.</summary>
    public string ConnectionString { get; }

    /// <summary>A new DbContext on this database (caller disposes).</summary>
    public WorkerDbContext CreateDbContext() => new(WorkerDbContextOptions.Create(ConnectionString));

    /// <summary>Opens a new connection on this database (caller disposes).</summary>
    public async Task<NpgsqlConnection> OpenConnectionAsync()
    {
        var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        return connection;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await services.DropDatabaseAsync(Name).ConfigureAwait(false);
    }
}
