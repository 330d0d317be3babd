using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Worker.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class OutboxDeadLetter : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "failed_at",
                table: "outbox_messages",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "failure_reason",
                table: "outbox_messages",
                type: "text",
                nullable: true);

            // Result events the relay gave up on (unreadable payload): the one case where a request's event is never
            // published. Ops look here; the request_id names the request whose publisher got no event.
            migrationBuilder.Sql("""
                CREATE VIEW ops_outbox_dead_lettered AS
                SELECT o.id AS outbox_id, r.request_id, o.message_type, o.created_at, o.failed_at, o.failure_reason, o.attempts
                FROM outbox_messages o
                LEFT JOIN assignment_requests r ON r.id = o.assignment_request_id
                WHERE o.failed_at IS NOT NULL;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP VIEW IF EXISTS ops_outbox_dead_lettered;");

            migrationBuilder.DropColumn(
                name: "failed_at",
                table: "outbox_messages");

            migrationBuilder.DropColumn(
                name: "failure_reason",
                table: "outbox_messages");
        }
    }
}
