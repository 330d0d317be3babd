using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Worker.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class PriorityLanes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "priority",
                table: "prospect_assignments",
                type: "character varying(8)",
                maxLength: 8,
                nullable: false,
                defaultValue: "Normal");

            migrationBuilder.AddColumn<string>(
                name: "priority",
                table: "dispatch_batches",
                type: "character varying(8)",
                maxLength: 8,
                nullable: false,
                defaultValue: "Normal");

            migrationBuilder.AddColumn<string>(
                name: "priority",
                table: "assignment_requests",
                type: "character varying(8)",
                maxLength: 8,
                nullable: true,
                defaultValue: "Normal");

            migrationBuilder.CreateIndex(
                name: "ix_prospect_assignments_pending_by_group_priority",
                table: "prospect_assignments",
                columns: new[] { "flow_id", "owner_email", "priority", "available_at", "id" },
                filter: "status = 'Pending'");

            migrationBuilder.CreateIndex(
                name: "ix_dispatch_batches_claimed_at_priority",
                table: "dispatch_batches",
                columns: new[] { "claimed_at", "priority" });

            // Additive and backward compatible: every existing row (and any insert that names no priority) is Normal.
            // One row per lane (README "Results table (ops)"): backlog, oldest age and throughput.
            migrationBuilder.Sql("""
                CREATE VIEW ops_priority_lanes AS
                SELECT l.priority,
                       (SELECT count(*) FROM prospect_assignments p WHERE p.status = 'Pending' AND p.priority = l.priority) AS pending,
                       (SELECT count(*) FROM prospect_assignments p WHERE p.status = 'InFlight' AND p.priority = l.priority) AS in_flight,
                       o.oldest_pending_at,
                       now() - o.oldest_pending_at AS oldest_pending_age,
                       c.completed_last_5_minutes,
                       round(c.completed_last_5_minutes / 300.0, 2) AS completed_per_second,
                       c.completed_last_hour,
                       (SELECT count(*) FROM dispatch_batches b WHERE b.claimed_at > now() - interval '1 hour' AND b.priority = l.priority) AS batches_last_hour
                FROM (VALUES (1, 'High'), (2, 'Normal'), (3, 'Bulk')) AS l(lane_order, priority)
                CROSS JOIN LATERAL (
                    SELECT min(p.created_at) AS oldest_pending_at FROM prospect_assignments p
                    WHERE p.status = 'Pending' AND p.priority = l.priority) o
                CROSS JOIN LATERAL (
                    SELECT count(*) FILTER (WHERE p.completed_at > now() - interval '5 minutes') AS completed_last_5_minutes,
                           count(*) AS completed_last_hour
                    FROM prospect_assignments p
                    WHERE p.status IN ('Assigned', 'NotAssigned', 'Failed') AND p.updated_at > now() - interval '1 hour'
                      AND p.completed_at > now() - interval '1 hour' AND p.priority = l.priority) c
                ORDER BY l.lane_order;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP VIEW IF EXISTS ops_priority_lanes;");

            migrationBuilder.DropIndex(
                name: "ix_prospect_assignments_pending_by_group_priority",
                table: "prospect_assignments");

            migrationBuilder.DropIndex(
                name: "ix_dispatch_batches_claimed_at_priority",
                table: "dispatch_batches");

            migrationBuilder.DropColumn(
                name: "priority",
                table: "prospect_assignments");

            migrationBuilder.DropColumn(
                name: "priority",
                table: "dispatch_batches");

            migrationBuilder.DropColumn(
                name: "priority",
                table: "assignment_requests");
        }
    }
}
