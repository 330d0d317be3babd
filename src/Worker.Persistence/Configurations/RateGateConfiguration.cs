using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Worker.Persistence.Entities;

namespace Worker.Persistence.Configurations;

internal sealed class RateGateConfiguration : IEntityTypeConfiguration<RateGate>
{
    public void Configure(EntityTypeBuilder<RateGate> builder)
    {
        builder.ToTable("rate_gate");
        builder.Property(g => g.Id).ValueGeneratedNever();
        builder.Property(g => g.BlockedReason).HasMaxLength(512);
        builder.Property(g => g.RecentStarts).HasColumnType("timestamptz[]");
        builder.Property(g => g.RateReason).HasMaxLength(64);
        builder.Property(g => g.BatchLimitReason).HasMaxLength(512);
    }
}
