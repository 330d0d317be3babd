using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Worker.Persistence.Entities;

namespace Worker.Persistence.Configurations;

internal sealed class GongCredentialsPauseConfiguration : IEntityTypeConfiguration<GongCredentialsPause>
{
    public void Configure(EntityTypeBuilder<GongCredentialsPause> builder)
    {
        builder.ToTable("gong_credentials_pause");
        builder.Property(p => p.Id).ValueGeneratedNever();
        builder.Property(p => p.Reason).HasMaxLength(512);
    }
}
