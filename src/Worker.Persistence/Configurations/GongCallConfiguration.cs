using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Worker.Persistence.Entities;

namespace Worker.Persistence.Configurations;

internal sealed class GongCallConfiguration : IEntityTypeConfiguration<GongCall>
{
    public void Configure(EntityTypeBuilder<GongCall> builder)
    {
        builder.ToTable("gong_calls");
        builder.Property(c => c.Endpoint).HasMaxLength(16);
        builder.Property(c => c.FlowId).HasMaxLength(256);
        builder.Property(c => c.OwnerEmail).HasMaxLength(512);
        builder.Property(c => c.OutcomeClass).HasConversion<string>().HasMaxLength(32);
        builder.HasIndex(c => c.StartedAt);
        builder.HasIndex(c => c.BatchId);
        builder.HasIndex(c => new { c.BatchId, c.CallId }).IsUnique();
    }
}
