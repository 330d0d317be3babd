using Microsoft.EntityFrameworkCore;

namespace Worker.Benchmarks.Baselines;

/// <summary>
/// What a baseline records per (request, prospect): Gong's answer as it understood it. Status is <c>Assigned</c>,
/// <c>NotAssigned</c> (Gong's errorCode and message) or <c>Failed</c> (the call failed after the resilience handler
/// gave up). Table <c>baseline_outcomes</c>, key (request_id, crm_prospect_id).
/// </summary>
internal sealed class BaselineOutcome
{
    public required string RequestId { get; set; }

    public required string CrmProspectId { get; set; }

    public required string FlowId { get; set; }

    public required string OwnerEmail { get; set; }

    public required string Status { get; set; }

    public string? FlowInstanceId { get; set; }

    public string? ErrorCode { get; set; }

    public string? ErrorMessage { get; set; }

    public DateTimeOffset RecordedAt { get; set; }
}

/// <summary>The baselines' own EF Core context: one table of outcomes, snake_case like the worker's.</summary>
internal sealed class BaselineDbContext(DbContextOptions<BaselineDbContext> options) : DbContext(options)
{
    public DbSet<BaselineOutcome> Outcomes => Set<BaselineOutcome>();

    protected override void OnModelCreating(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<BaselineOutcome>(e =>
        {
            e.ToTable("baseline_outcomes");
            e.HasKey(o => new { o.RequestId, o.CrmProspectId });
        });
}
