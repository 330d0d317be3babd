using Microsoft.EntityFrameworkCore.Design;

namespace Worker.Persistence;

/// <summary>
/// Lets <c>dotnet ef</c> build the model without the host. Uses <c>ConnectionStrings__Postgres</c> when set,
/// otherwise a local default without a password (no secret in the shipped assembly); adding a migration does not connect.
/// </summary>
public sealed class DesignTimeWorkerDbContextFactory : IDesignTimeDbContextFactory<WorkerDbContext>
{
    /// <inheritdoc />
    public WorkerDbContext CreateDbContext(string[] args) =>
        new(WorkerDbContextOptions.Create(
            Environment.GetEnvironmentVariable("ConnectionStrings__Postgres")
            ?? "Host=127.0.0.1;Port=5432;Database=worker;Username=worker"));
}
