using Microsoft.EntityFrameworkCore;
using Worker.Persistence.Entities;

namespace Worker.Persistence;

/// <summary>
/// The worker's Postgres schema: requests, the prospect results table, dispatch batches, Gong calls,
/// the outbox and the shared rate gate. snake_case names, enums as text, <c>timestamptz</c> in UTC.
/// </summary>
/// <remarks>
/// Add a migration (from the repository root):
/// <c>dotnet tool restore &amp;&amp; dotnet ef migrations add &lt;Name&gt; --project src/Worker.Persistence --output-dir Migrations</c>.
/// The design-time factory (<see cref="DesignTimeWorkerDbContextFactory"/>) needs no running database.
/// Apply migrations with the host's <c>migrate</c> subcommand, never with EnsureCreated.
/// </remarks>
public sealed class WorkerDbContext(DbContextOptions<WorkerDbContext> options) : DbContext(options)
{
    /// <summary>One row per publisher requestId.</summary>
    public DbSet<AssignmentRequest> AssignmentRequests => Set<AssignmentRequest>();

    /// <summary>The results table: one row per (request, prospect).</summary>
    public DbSet<ProspectAssignment> ProspectAssignments => Set<ProspectAssignment>();

    /// <summary>Claimed batches and their leases.</summary>
    public DbSet<DispatchBatch> DispatchBatches => Set<DispatchBatch>();

    /// <summary>One row per HTTP call to Gong.</summary>
    public DbSet<GongCall> GongCalls => Set<GongCall>();

    /// <summary>Result events waiting to be published.</summary>
    public DbSet<OutboxMessage> OutboxMessages => Set<OutboxMessage>();

    /// <summary>The shared rate gate (one row).</summary>
    public DbSet<RateGate> RateGates => Set<RateGate>();

    /// <summary>Lifts of the rate gate's block by an operator (audit).</summary>
    public DbSet<RateGateOpening> RateGateOpenings => Set<RateGateOpening>();

    /// <summary>The credentials pause shared by every replica (one row).</summary>
    public DbSet<GongCredentialsPause> GongCredentialsPauses => Set<GongCredentialsPause>();

    /// <inheritdoc />
    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        ArgumentNullException.ThrowIfNull(modelBuilder);
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(WorkerDbContext).Assembly);
    }
}
