using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace Worker.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class GongFaultPaths : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<Guid>(
                name: "call_id",
                table: "gong_calls",
                type: "uuid",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "gong_credentials_pause",
                columns: table => new
                {
                    id = table.Column<int>(type: "integer", nullable: false),
                    paused_since = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    reason = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: true),
                    probes = table.Column<int>(type: "integer", nullable: false),
                    next_probe_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_gong_credentials_pause", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "rate_gate_openings",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    opened_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    opened_by = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    reason = table.Column<string>(type: "character varying(1000)", maxLength: 1000, nullable: false),
                    blocked_until = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    blocked_reason = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_rate_gate_openings", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_gong_calls_batch_id_call_id",
                table: "gong_calls",
                columns: new[] { "batch_id", "call_id" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_rate_gate_openings_opened_at",
                table: "rate_gate_openings",
                column: "opened_at");

            // Earlier versions stamped a 429's block (up to 7 days) into the prospects' own available_at; now the gate
            // alone holds blocked work, so release anything parked beyond the longest block a 429 may now cause (25 h).
            migrationBuilder.Sql("""
                UPDATE prospect_assignments SET available_at = now()
                WHERE status = 'Pending' AND available_at > now() + interval '25 hours';
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "gong_credentials_pause");

            migrationBuilder.DropTable(
                name: "rate_gate_openings");

            migrationBuilder.DropIndex(
                name: "ix_gong_calls_batch_id_call_id",
                table: "gong_calls");

            migrationBuilder.DropColumn(
                name: "call_id",
                table: "gong_calls");
        }
    }
}
