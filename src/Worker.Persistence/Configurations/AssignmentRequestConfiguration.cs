using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Worker.Persistence.Entities;

namespace Worker.Persistence.Configurations;

internal sealed class AssignmentRequestConfiguration : IEntityTypeConfiguration<AssignmentRequest>
{
    public void Configure(EntityTypeBuilder<AssignmentRequest> builder)
    {
        builder.ToTable("assignment_requests");
        builder.Property(r => r.RequestId).HasMaxLength(256);
        builder.Property(r => r.FlowId).HasMaxLength(256);
        builder.Property(r => r.OwnerEmail).HasMaxLength(512);
        builder.Property(r => r.OwnerEmailNormalized).HasMaxLength(512);
        builder.Property(r => r.Status).HasConversion<string>().HasMaxLength(32);
        builder.Property(r => r.Priority).HasConversion<string>().HasMaxLength(8);
        builder.Property(r => r.ContentHash).HasMaxLength(64).IsFixedLength();
        builder.Property(r => r.RedriveOfRequestId).HasMaxLength(256);
        // The idempotency guarantee: concurrent duplicates collide here, not in a check-then-insert.
        builder.HasIndex(r => r.RequestId).IsUnique();
        builder.HasIndex(r => r.ReceivedAt);
        builder.HasIndex(r => new { r.Status, r.CompletedAt });
        builder.HasMany(r => r.Prospects).WithOne(p => p.AssignmentRequest)
            .HasForeignKey(p => p.AssignmentRequestId).OnDelete(DeleteBehavior.Cascade);
    }
}
