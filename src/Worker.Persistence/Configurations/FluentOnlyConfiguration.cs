using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Worker.Persistence.Entities;

namespace Worker.Persistence.Configurations;

/// <summary>
/// What the entities' attributes (<c>[Table]</c>, <c>[MaxLength]</c>, <c>[Column]</c>, <c>[Index]</c>) cannot say:
/// partial indexes, index names and fixed-length columns. Enums as text: <see cref="WorkerDbContext"/>'s conventions.
/// </summary>
internal sealed class FluentOnlyConfiguration :
    IEntityTypeConfiguration<AssignmentRequest>,
    IEntityTypeConfiguration<DispatchBatch>,
    IEntityTypeConfiguration<OutboxMessage>,
    IEntityTypeConfiguration<ProspectAssignment>
{
    public void Configure(EntityTypeBuilder<AssignmentRequest> builder) =>
        builder.Property(r => r.ContentHash).IsFixedLength();

    public void Configure(EntityTypeBuilder<DispatchBatch> builder)
    {
        // Open batches by lease end: how an expired lease is found.
        builder.HasIndex(b => b.LeaseExpiresAt).HasFilter("completed_at IS NULL");
        // Retention of closed batches.
        builder.HasIndex(b => b.CompletedAt).HasFilter("completed_at IS NOT NULL");
    }

    public void Configure(EntityTypeBuilder<OutboxMessage> builder)
    {
        builder.HasIndex(m => new { m.AvailableAt, m.CreatedAt })
            .HasDatabaseName("ix_outbox_messages_unpublished")
            .HasFilter("published_at IS NULL");
        // Retention of published rows.
        builder.HasIndex(m => m.PublishedAt).HasFilter("published_at IS NOT NULL");
    }

    public void Configure(EntityTypeBuilder<ProspectAssignment> builder)
    {
        // "Pending by group, oldest first": partial so it stays small however large the history grows.
        builder.HasIndex(p => new { p.FlowId, p.OwnerEmail, p.AvailableAt, p.Id })
            .HasDatabaseName("ix_prospect_assignments_pending_by_group")
            .HasFilter("status = 'Pending'");
        // Claims take a group's rows lane by lane (High, Normal, Bulk), each oldest first; the dispatcher probes the
        // oldest row of each lane per group.
        builder.HasIndex(p => new { p.FlowId, p.OwnerEmail, p.Priority, p.AvailableAt, p.Id })
            .HasDatabaseName("ix_prospect_assignments_pending_by_group_priority")
            .HasFilter("status = 'Pending'");
        builder.HasIndex(p => p.BatchId).HasFilter("batch_id IS NOT NULL");
        // Re-drives whose request is not stored yet are found through it (see the redrive subcommand).
        builder.HasIndex(p => p.RedrivenByRequestId).HasFilter("redriven_by_request_id IS NOT NULL");
    }
}
