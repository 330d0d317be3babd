using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Worker.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class RedriveColumns : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "redriven_by_request_id",
                table: "prospect_assignments",
                type: "character varying(256)",
                maxLength: 256,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "redrive_of_request_id",
                table: "assignment_requests",
                type: "character varying(256)",
                maxLength: 256,
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "ix_prospect_assignments_redriven_by_request_id",
                table: "prospect_assignments",
                column: "redriven_by_request_id",
                filter: "redriven_by_request_id IS NOT NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_prospect_assignments_redriven_by_request_id",
                table: "prospect_assignments");

            migrationBuilder.DropColumn(
                name: "redriven_by_request_id",
                table: "prospect_assignments");

            migrationBuilder.DropColumn(
                name: "redrive_of_request_id",
                table: "assignment_requests");
        }
    }
}
