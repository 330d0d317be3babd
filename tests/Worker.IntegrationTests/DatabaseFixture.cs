using Worker.Testing;

namespace Worker.IntegrationTests;

/// <summary>
/// xUnit class fixture: one database, a copy of the run's migrated template (<see cref="TestServices"/> migrates the
/// template once per test run), for all tests of a class that only read it or write rows of their own. Tests that
/// change shared rows (the rate gate) or cut connections take their own database.
/// </summary>
public sealed class DatabaseFixture : IAsyncLifetime
{
    private TestDatabase? database;

    /// <summary>The shared database (created in <see cref="InitializeAsync"/>).</summary>
    public TestDatabase Database => database ?? throw new InvalidOperationException("The fixture is not initialized.");

    /// <inheritdoc />
    public async Task InitializeAsync() => database = await (await TestServices.GetAsync()).CreateDatabaseAsync();

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        if (database is not null)
        {
            await database.DisposeAsync();
        }
    }
}
