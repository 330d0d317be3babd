using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Worker.Persistence.Entities;

namespace Worker.Persistence.Configurations;

internal sealed class OutboxMessageConfiguration : IEntityTypeConfiguration<OutboxMessage>
{
    public void Configure(EntityTypeBuilder<OutboxMessage> builder)
    {
        builder.ToTable("outbox_messages");
        builder.Property(m => m.MessageType).HasMaxLength(256);
        builder.Property(m => m.Payload).HasColumnType("jsonb");
        builder.HasIndex(m => new { m.AvailableAt, m.CreatedAt })
            .HasDatabaseName("ix_outbox_messages_unpublished")
            .HasFilter("published_at IS NULL");
        builder.HasIndex(m => m.AssignmentRequestId);
        // Retention of published rows.
        builder.HasIndex(m => m.PublishedAt).HasFilter("published_at IS NOT NULL");
    }
}
