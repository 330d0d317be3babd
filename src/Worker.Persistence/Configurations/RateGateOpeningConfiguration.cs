using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Worker.Persistence.Entities;

namespace Worker.Persistence.Configurations;

internal sealed class RateGateOpeningConfiguration : IEntityTypeConfiguration<RateGateOpening>
{
    public void Configure(EntityTypeBuilder<RateGateOpening> builder)
    {
        builder.ToTable("rate_gate_openings");
        builder.Property(o => o.OpenedBy).HasMaxLength(256);
        builder.Property(o => o.Reason).HasMaxLength(1000);
        builder.Property(o => o.BlockedReason).HasMaxLength(512);
        builder.HasIndex(o => o.OpenedAt);
    }
}
