using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Worker.Persistence.Entities;

namespace Worker.Persistence.Configurations;

internal sealed class DispatchBatchConfiguration : IEntityTypeConfiguration<DispatchBatch>
{
    public void Configure(EntityTypeBuilder<DispatchBatch> builder)
    {
        builder.ToTable("dispatch_batches");
        builder.Property(b => b.FlowId).HasMaxLength(256);
        builder.Property(b => b.OwnerEmail).HasMaxLength(512);
        builder.Property(b => b.ClaimedBy).HasMaxLength(256);
        builder.Property(b => b.Priority).HasConversion<string>().HasMaxLength(8);
        // Batches per lane over a recent window: the ops views' throughput per priority.
        builder.HasIndex(b => new { b.ClaimedAt, b.Priority });
        // Open batches by lease end: how an expired lease is found.
        builder.HasIndex(b => b.LeaseExpiresAt).HasFilter("completed_at IS NULL");
        // "When was this group last served": the dispatcher's fair turns across replicas.
        builder.HasIndex(b => new { b.FlowId, b.OwnerEmail, b.ClaimedAt });
        // Retention of closed batches.
        builder.HasIndex(b => b.CompletedAt).HasFilter("completed_at IS NOT NULL");
    }
}
