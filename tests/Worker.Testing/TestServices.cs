using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Testcontainers.PostgreSql;
using Testcontainers.RabbitMq;
using Worker.Persistence;

namespace Worker.Testing;

/// <summary>
/// The Postgres and RabbitMQ every integration test runs against, started once per test run.
/// </summary>
/// <remarks>
/// Connection settings come from the environment when set (what <c>scripts/services-up.sh</c> prints):
/// <list type="bullet">
/// <item><c>TEST_POSTGRES</c>: Npgsql connection string of a role with CREATEDB, e.g.
/// <c>Host=127.0.0.1;Port=5432;Database=postgres;Username=worker;Password=worker</c>.</item>
/// <item><c>TEST_RABBITMQ</c>: AMQP URI of an administrator user, e.g. <c>amqp://worker:worker@127.0.0.1:5672/</c>.</item>
/// <item><c>TEST_RABBITMQ_MANAGEMENT</c>: management API base URL, e.g. <c>http://127.0.0.1:15672</c>.</item>
/// </list>
/// Otherwise Testcontainers starts pinned images (<see cref="PostgresImage"/>, <see cref="RabbitMqImage"/>).
/// If neither works the run fails with a message naming what is missing: it never skips.
/// Each test takes its own database (<see cref="CreateDatabaseAsync"/>, a copy of a migrated template)
/// and its own vhost (<see cref="CreateVirtualHostAsync"/>), so tests start from clean data and run in parallel.
/// </remarks>
public sealed class TestServices
{
    /// <summary>Pinned Postgres image used when <c>TEST_POSTGRES</c> is not set.</summary>
    public const string PostgresImage = "postgres:15.10-alpine";

    /// <summary>Pinned RabbitMQ image (with the management API) used when <c>TEST_RABBITMQ</c> is not set.</summary>
    public const string RabbitMqImage = "rabbitmq:3.13.7-management-alpine";

    private static readonly SemaphoreSlim StartLock = new(1, 1);
    private static TestServices? instance;
    private readonly SemaphoreSlim templateLock = new(1, 1);
    private readonly HttpClient management;
    private string? templateDatabase;

    private TestServices(string postgresAdmin, Uri rabbitMq, Uri managementUri)
    {
        PostgresAdminConnectionString = postgresAdmin;
        RabbitMqUri = rabbitMq;
        var userInfo = Uri.UnescapeDataString(rabbitMq.UserInfo);
        var colon = userInfo.IndexOf(':', StringComparison.Ordinal);
        RabbitMqUsername = colon < 0 ? userInfo : userInfo[..colon];
        RabbitMqPassword = colon < 0 ? string.Empty : userInfo[(colon + 1)..];
        management = new HttpClient { BaseAddress = managementUri, Timeout = TimeSpan.FromSeconds(30) };
        management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue(
            "Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{RabbitMqUsername}:{RabbitMqPassword}")));
    }

    /// <summary>Connection string of a Postgres role allowed to create databases.</summary>
    public string PostgresAdminConnectionString { get; }

    /// <summary>AMQP URI of the broker (default vhost).</summary>
    public Uri RabbitMqUri { get; }

    /// <summary>Broker user (administrator).</summary>
    public string RabbitMqUsername { get; }

    /// <summary>Broker password.</summary>
    public string RabbitMqPassword { get; }

    /// <summary>Returns the shared services, starting containers on first use when the environment names none.</summary>
    /// <exception cref="InvalidOperationException">Neither environment settings nor a Docker engine are available.</exception>
    public static async Task<TestServices> GetAsync()
    {
        if (instance is not null)
        {
            return instance;
        }

        await StartLock.WaitAsync().ConfigureAwait(false);
        try
        {
            instance ??= await StartAsync().ConfigureAwait(false);
            return instance;
        }
        finally
        {
            StartLock.Release();
        }
    }

    /// <summary>Creates an empty, fully migrated database for one test (dropped on dispose).</summary>
    public async Task<TestDatabase> CreateDatabaseAsync()
    {
        var template = await EnsureTemplateAsync().ConfigureAwait(false);
        return await CreateDatabaseFromAsync($"TEMPLATE \"{template}\"").ConfigureAwait(false);
    }

    /// <summary>Creates a database with no tables at all (not even the migrations history) for one test (dropped on dispose).</summary>
    public Task<TestDatabase> CreateEmptyDatabaseAsync() => CreateDatabaseFromAsync(string.Empty);

    private async Task<TestDatabase> CreateDatabaseFromAsync(string createOptions)
    {
        var name = $"test_{Stamp()}_{Guid.NewGuid().ToString("N")[..12]}";
        await using (var admin = new NpgsqlConnection(PostgresAdminConnectionString))
        {
            await admin.OpenAsync().ConfigureAwait(false);
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\" {createOptions}", admin);
            await create.ExecuteNonQueryAsync().ConfigureAwait(false);
        }

        var builder = new NpgsqlConnectionStringBuilder(PostgresAdminConnectionString) { Database = name };
        return new TestDatabase(this, name, builder.ConnectionString);
    }

    /// <summary>Creates an empty vhost for one test, with full permissions for the test user (deleted on dispose).</summary>
    public async Task<TestVirtualHost> CreateVirtualHostAsync()
    {
        var name = $"test-{Stamp()}-{Guid.NewGuid().ToString("N")[..12]}";
        using (var put = await management.PutAsync(new Uri($"api/vhosts/{name}", UriKind.Relative), null).ConfigureAwait(false))
        {
            put.EnsureSuccessStatusCode();
        }

        using (var permissions = await management.PutAsJsonAsync(
                   new Uri($"api/permissions/{name}/{Uri.EscapeDataString(RabbitMqUsername)}", UriKind.Relative),
                   new { configure = ".*", write = ".*", read = ".*" }).ConfigureAwait(false))
        {
            permissions.EnsureSuccessStatusCode();
        }

        return new TestVirtualHost(this, name);
    }

    internal async Task DropDatabaseAsync(string name)
    {
        // A session still closing (pooled connections of a host being stopped) can make the forced drop fail
        // for a moment; retry briefly. A database left behind is removed by the stale-database sweep of a later run.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var admin = new NpgsqlConnection(PostgresAdminConnectionString);
                await admin.OpenAsync().ConfigureAwait(false);
                await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", admin);
                await drop.ExecuteNonQueryAsync().ConfigureAwait(false);
                return;
            }
            catch (PostgresException ex) when (attempt < 5 && ex.SqlState is PostgresErrorCodes.InsufficientPrivilege or PostgresErrorCodes.ObjectInUse)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt)).ConfigureAwait(false);
            }
        }
    }

    internal async Task DeleteVirtualHostAsync(string name)
    {
        using var response = await management.DeleteAsync(new Uri($"api/vhosts/{name}", UriKind.Relative)).ConfigureAwait(false);
    }

    /// <summary>GET on the RabbitMQ management API (relative path such as <c>api/queues/vhost/name</c>).</summary>
    public async Task<HttpResponseMessage> ManagementGetAsync(string relativePath) =>
        await management.GetAsync(new Uri(relativePath, UriKind.Relative)).ConfigureAwait(false);

    private static async Task<TestServices> StartAsync()
    {
        var postgres = Environment.GetEnvironmentVariable("TEST_POSTGRES");
        var rabbit = Environment.GetEnvironmentVariable("TEST_RABBITMQ");
        var managementUrl = Environment.GetEnvironmentVariable("TEST_RABBITMQ_MANAGEMENT");
        try
        {
            if (string.IsNullOrWhiteSpace(postgres))
            {
                var container = new PostgreSqlBuilder(PostgresImage).Build();
                await container.StartAsync().ConfigureAwait(false);
                postgres = container.GetConnectionString();
            }

            if (string.IsNullOrWhiteSpace(rabbit))
            {
                var container = new RabbitMqBuilder(RabbitMqImage).WithPortBinding(15672, true).Build();
                await container.StartAsync().ConfigureAwait(false);
                rabbit = container.GetConnectionString();
                managementUrl = $"http://{container.Hostname}:{container.GetMappedPublicPort(15672)}";
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new InvalidOperationException(
                "Integration tests need PostgreSQL and RabbitMQ. Set TEST_POSTGRES, TEST_RABBITMQ and TEST_RABBITMQ_MANAGEMENT " +
                "(run `eval \"$(scripts/services-up.sh)\"`), or provide a Docker engine for Testcontainers. " +
                $"Missing: {(string.IsNullOrWhiteSpace(postgres) ? "TEST_POSTGRES " : string.Empty)}" +
                $"{(string.IsNullOrWhiteSpace(rabbit) ? "TEST_RABBITMQ " : string.Empty)}(Testcontainers failed: {ex.Message})",
                ex);
        }

        if (string.IsNullOrWhiteSpace(managementUrl))
        {
            var amqp = new Uri(rabbit);
            managementUrl = $"http://{amqp.Host}:15672";
        }

        return new TestServices(postgres, new Uri(rabbit), new Uri(managementUrl.TrimEnd('/') + "/"));
    }

    private async Task<string> EnsureTemplateAsync()
    {
        if (templateDatabase is not null)
        {
            return templateDatabase;
        }

        await templateLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (templateDatabase is not null)
            {
                return templateDatabase;
            }

            // One migrated template per run; every test database is a cheap copy of it.
            var name = $"test_template_{Stamp()}_{Guid.NewGuid().ToString("N")[..8]}";
            await using (var admin = new NpgsqlConnection(PostgresAdminConnectionString))
            {
                await admin.OpenAsync().ConfigureAwait(false);
                await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", admin);
                await create.ExecuteNonQueryAsync().ConfigureAwait(false);
            }

            var connectionString = new NpgsqlConnectionStringBuilder(PostgresAdminConnectionString) { Database = name, Pooling = false }.ConnectionString;
            await using (var db = new WorkerDbContext(WorkerDbContextOptions.Create(connectionString)))
            {
                await db.Database.MigrateAsync().ConfigureAwait(false);
            }

            await DropStaleTestDatabasesAsync(name).ConfigureAwait(false);
            templateDatabase = name;
            return name;
        }
        finally
        {
            templateLock.Release();
        }
    }

    /// <summary>UTC creation stamp in test database and vhost names: what the stale sweep reads (no superuser needed).</summary>
    private static string Stamp() => DateTime.UtcNow.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>True for a test database or vhost name older than an hour (or of an older naming without a stamp).</summary>
    private static bool IsStale(string name, string prefix)
    {
        var rest = name[prefix.Length..];
        if (rest.StartsWith("template_", StringComparison.Ordinal))
        {
            rest = rest["template_".Length..];
        }

        var stamp = rest.Length >= 14 ? rest[..14] : rest;
        return !DateTime.TryParseExact(stamp, "yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture,
                   System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal, out var created)
               || created < DateTime.UtcNow.AddHours(-1);
    }

    private async Task DropStaleTestDatabasesAsync(string keep)
    {
        // Databases and vhosts left by killed or interrupted runs (and each run's template) would otherwise pile up.
        var stale = new List<string>();
        await using (var admin = new NpgsqlConnection(PostgresAdminConnectionString))
        {
            await admin.OpenAsync().ConfigureAwait(false);
            await using var list = new NpgsqlCommand("SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%' AND datname <> @keep", admin);
            list.Parameters.AddWithValue("keep", keep);
            await using var reader = await list.ExecuteReaderAsync().ConfigureAwait(false);
            while (await reader.ReadAsync().ConfigureAwait(false))
            {
                var name = reader.GetString(0);
                if (IsStale(name, "test_"))
                {
                    stale.Add(name);
                }
            }
        }

        foreach (var name in stale)
        {
            try
            {
                await DropDatabaseAsync(name).ConfigureAwait(false);
            }
            catch (PostgresException)
            {
                // Still in use by a run that is not over: a later sweep takes it.
            }
        }

        using var vhosts = await management.GetAsync(new Uri("api/vhosts?columns=name", UriKind.Relative)).ConfigureAwait(false);
        if (vhosts.IsSuccessStatusCode)
        {
            var names = await vhosts.Content.ReadFromJsonAsync<List<VirtualHostName>>().ConfigureAwait(false) ?? [];
            foreach (var vhost in names.Where(v => v.Name.StartsWith("test-", StringComparison.Ordinal) && IsStale(v.Name, "test-")))
            {
                await DeleteVirtualHostAsync(vhost.Name).ConfigureAwait(false);
            }
        }
    }

    private sealed record VirtualHostName([property: System.Text.Json.Serialization.JsonPropertyName("name")] string Name);
}
