using Worker.Testing;

namespace Worker.IntegrationTests.Ingest;

/// <summary>
/// xUnit class fixture: one database (a copy of the run's migrated template, see <see cref="TestServices"/>), one
/// vhost and one ingest-only worker host for all tests of a class. xUnit runs a class's tests one after another, so
/// each test sees the host alone; tests keep to their own request ids and message ids, and read counters as
/// differences. A test that cuts connections, starts a second host or needs exact counters takes its own
/// <see cref="IngestHarness"/> instead.
/// </summary>
public sealed class IngestHostFixture : IAsyncLifetime
{
    private IngestHarness? harness;

    /// <summary>The shared harness (started in <see cref="InitializeAsync"/>).</summary>
    internal IngestHarness Harness => harness ?? throw new InvalidOperationException("The fixture is not initialized.");

    /// <summary>Sends the host's log to the current test's output until disposed (call from the test class's constructor).</summary>
    public IDisposable Attach(ITestOutputHelper output) => Harness.Log.Attach(output.WriteLine);

    /// <inheritdoc />
    public async Task InitializeAsync() => harness = await IngestHarness.StartAsync(output: null);

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        if (harness is not null)
        {
            await harness.DisposeAsync();
        }
    }
}
