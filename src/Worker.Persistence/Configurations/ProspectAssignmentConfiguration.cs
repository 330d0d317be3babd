using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Worker.Persistence.Entities;

namespace Worker.Persistence.Configurations;

internal sealed class ProspectAssignmentConfiguration : IEntityTypeConfiguration<ProspectAssignment>
{
    public void Configure(EntityTypeBuilder<ProspectAssignment> builder)
    {
        builder.ToTable("prospect_assignments");
        builder.Property(p => p.CrmProspectId).HasMaxLength(512);
        builder.Property(p => p.FlowId).HasMaxLength(256);
        builder.Property(p => p.OwnerEmail).HasMaxLength(512);
        builder.Property(p => p.Status).HasConversion<string>().HasMaxLength(16);
        builder.Property(p => p.ErrorCode).HasMaxLength(64);
        builder.HasIndex(p => new { p.AssignmentRequestId, p.CrmProspectId }).IsUnique();
        // "Pending by group, oldest first": partial so it stays small however large the history grows.
        builder.HasIndex(p => new { p.FlowId, p.OwnerEmail, p.AvailableAt, p.Id })
            .HasDatabaseName("ix_prospect_assignments_pending_by_group")
            .HasFilter("status = 'Pending'");
        builder.Property(p => p.Priority).HasConversion<string>().HasMaxLength(8);
        // Claims take a group's rows lane by lane (High, Normal, Bulk), each oldest first; the dispatcher probes the
        // oldest row of each lane per group.
        builder.HasIndex(p => new { p.FlowId, p.OwnerEmail, p.Priority, p.AvailableAt, p.Id })
            .HasDatabaseName("ix_prospect_assignments_pending_by_group_priority")
            .HasFilter("status = 'Pending'");
        builder.HasIndex(p => p.BatchId).HasFilter("batch_id IS NOT NULL");
        builder.HasIndex(p => p.CrmProspectId);
        builder.HasIndex(p => new { p.Status, p.UpdatedAt });
        builder.Property(p => p.RedrivenByRequestId).HasMaxLength(256);
        // Re-drives whose request is not stored yet are found through it (see the redrive subcommand).
        builder.HasIndex(p => p.RedrivenByRequestId).HasFilter("redriven_by_request_id IS NOT NULL");
    }
}
