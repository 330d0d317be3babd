using Microsoft.EntityFrameworkCore;
using Npgsql;
using Worker.Persistence;

namespace Worker.Host.Persistence;

/// <summary>Registers the Npgsql data source and <see cref="WorkerDbContext"/> (scoped and as a factory).</summary>
public static class PersistenceExtensions
{
    /// <summary>Connection string name: <c>ConnectionStrings:Postgres</c> (env <c>ConnectionStrings__Postgres</c>).</summary>
    public const string ConnectionStringName = "Postgres";

    /// <summary>Adds the data source and DbContext.</summary>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">When <c>ConnectionStrings:Postgres</c> is not set (the message names it).</exception>
    public static IHostApplicationBuilder AddWorkerPersistence(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var connectionString = builder.Configuration.GetConnectionString(ConnectionStringName);
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            // The same exception as an invalid option, so the command line prints it as such (exit 1, no stack trace).
            throw new Microsoft.Extensions.Options.OptionsValidationException(ConnectionStringName, typeof(string),
                ["Setting ConnectionStrings:Postgres (environment variable ConnectionStrings__Postgres) is required: an Npgsql connection string, e.g. Host=127.0.0.1;Database=worker;Username=worker;Password=…"]);
        }

        builder.Services.AddNpgsqlDataSource(connectionString);
        builder.Services.AddDbContextFactory<WorkerDbContext>(
            (sp, options) => options.UseWorkerPostgres(sp.GetRequiredService<NpgsqlDataSource>()),
            ServiceLifetime.Singleton);
        builder.Services.AddScoped(sp => sp.GetRequiredService<IDbContextFactory<WorkerDbContext>>().CreateDbContext());
        return builder;
    }
}
