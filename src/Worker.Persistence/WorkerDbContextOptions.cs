using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Worker.Persistence;

/// <summary>The one place the Npgsql/EF Core options of <see cref="WorkerDbContext"/> are set.</summary>
public static class WorkerDbContextOptions
{
    /// <summary>Configures Npgsql with snake_case naming and the migrations assembly.</summary>
    /// <param name="builder">The options builder to configure.</param>
    /// <param name="dataSource">A data source built from the <c>ConnectionStrings:Postgres</c> connection string.</param>
    public static DbContextOptionsBuilder UseWorkerPostgres(this DbContextOptionsBuilder builder, NpgsqlDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder
            .UseNpgsql(dataSource, npgsql => npgsql.MigrationsAssembly(typeof(WorkerDbContext).Assembly.GetName().Name))
            .UseSnakeCaseNamingConvention();
    }

    /// <summary>Builds options for a connection string (tests, tools, the design-time factory).</summary>
    /// <param name="connectionString">An Npgsql connection string.</param>
    public static DbContextOptions<WorkerDbContext> Create(string connectionString)
    {
        var builder = new DbContextOptionsBuilder<WorkerDbContext>();
        builder.UseNpgsql(connectionString, npgsql => npgsql.MigrationsAssembly(typeof(WorkerDbContext).Assembly.GetName().Name))
            .UseSnakeCaseNamingConvention();
        return builder.Options;
    }
}
