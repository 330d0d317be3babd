using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Worker.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class DispatchOpsViews : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "ix_outbox_messages_published_at",
                table: "outbox_messages",
                column: "published_at",
                filter: "published_at IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_dispatch_batches_completed_at",
                table: "dispatch_batches",
                column: "completed_at",
                filter: "completed_at IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_dispatch_batches_flow_id_owner_email_claimed_at",
                table: "dispatch_batches",
                columns: new[] { "flow_id", "owner_email", "claimed_at" });

            // Views for ops (README "Results table (ops)"). Times are the database's now(); all in UTC (timestamptz).
            migrationBuilder.Sql("""
                CREATE VIEW ops_backlog_by_group AS
                SELECT flow_id, owner_email,
                       count(*) FILTER (WHERE status = 'Pending') AS pending,
                       count(*) FILTER (WHERE status = 'InFlight') AS in_flight,
                       count(*) FILTER (WHERE status = 'Assigned') AS assigned,
                       count(*) FILTER (WHERE status = 'NotAssigned') AS not_assigned,
                       count(*) FILTER (WHERE status = 'Failed') AS failed,
                       count(*) FILTER (WHERE status = 'Rejected') AS rejected,
                       min(available_at) FILTER (WHERE status = 'Pending') AS oldest_pending_at,
                       now() - min(created_at) FILTER (WHERE status IN ('Pending', 'InFlight')) AS oldest_open_age,
                       max(completed_at) AS last_completed_at
                FROM prospect_assignments
                GROUP BY flow_id, owner_email;
                """);
            migrationBuilder.Sql("""
                CREATE VIEW ops_gong_calls_per_minute AS
                SELECT date_trunc('minute', started_at) AS minute,
                       count(*) AS calls,
                       sum(prospect_count) AS prospects,
                       round(avg(prospect_count), 1) AS mean_fill,
                       count(*) FILTER (WHERE http_status = 429) AS throttled,
                       count(*) FILTER (WHERE outcome_class <> 'Answered') AS not_answered
                FROM gong_calls
                WHERE endpoint = 'assign' AND started_at >= now() - interval '1 hour'
                GROUP BY 1;
                """);
            migrationBuilder.Sql("""
                CREATE VIEW ops_gong_last_hour AS
                SELECT count(*) AS calls,
                       round(count(*) / 60.0, 2) AS calls_per_minute,
                       round(count(*) / 3600.0, 3) AS calls_per_second,
                       coalesce(sum(prospect_count), 0) AS prospects,
                       round(avg(prospect_count), 1) AS mean_fill,
                       count(*) FILTER (WHERE http_status = 429) AS throttled,
                       round(avg(duration_ms)) AS mean_duration_ms
                FROM gong_calls
                WHERE endpoint = 'assign' AND started_at >= now() - interval '1 hour';
                """);
            migrationBuilder.Sql("""
                CREATE VIEW ops_stuck_requests AS
                SELECT r.id, r.request_id, r.flow_id, r.owner_email_normalized AS owner_email, r.received_at,
                       now() - r.received_at AS age, r.prospect_count, r.pending_count,
                       (SELECT count(*) FROM prospect_assignments p WHERE p.assignment_request_id = r.id AND p.status = 'InFlight') AS in_flight,
                       (SELECT max(p.attempts) FROM prospect_assignments p WHERE p.assignment_request_id = r.id AND p.status IN ('Pending', 'InFlight')) AS max_attempts,
                       (SELECT string_agg(DISTINCT p.error_code, ', ') FROM prospect_assignments p WHERE p.assignment_request_id = r.id AND p.status IN ('Pending', 'InFlight')) AS last_errors
                FROM assignment_requests r
                WHERE r.status IS NULL AND r.received_at < now() - interval '15 minutes';
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP VIEW IF EXISTS ops_stuck_requests;");
            migrationBuilder.Sql("DROP VIEW IF EXISTS ops_gong_last_hour;");
            migrationBuilder.Sql("DROP VIEW IF EXISTS ops_gong_calls_per_minute;");
            migrationBuilder.Sql("DROP VIEW IF EXISTS ops_backlog_by_group;");

            migrationBuilder.DropIndex(
                name: "ix_outbox_messages_published_at",
                table: "outbox_messages");

            migrationBuilder.DropIndex(
                name: "ix_dispatch_batches_completed_at",
                table: "dispatch_batches");

            migrationBuilder.DropIndex(
                name: "ix_dispatch_batches_flow_id_owner_email_claimed_at",
                table: "dispatch_batches");
        }
    }
}
