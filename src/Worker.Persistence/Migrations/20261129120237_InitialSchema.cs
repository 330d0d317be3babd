using System;
using System.Collections.Generic;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace Worker.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class InitialSchema : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "assignment_requests",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    request_id = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    flow_id = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    owner_email = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    owner_email_normalized = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    status = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: true),
                    prospect_count = table.Column<int>(type: "integer", nullable: false),
                    pending_count = table.Column<int>(type: "integer", nullable: false),
                    assigned_count = table.Column<int>(type: "integer", nullable: false),
                    not_assigned_count = table.Column<int>(type: "integer", nullable: false),
                    failed_count = table.Column<int>(type: "integer", nullable: false),
                    rejected_count = table.Column<int>(type: "integer", nullable: false),
                    content_hash = table.Column<string>(type: "character(64)", fixedLength: true, maxLength: 64, nullable: false),
                    rejection_reason = table.Column<string>(type: "text", nullable: true),
                    received_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    completed_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_assignment_requests", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "dispatch_batches",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    flow_id = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    owner_email = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    prospect_count = table.Column<int>(type: "integer", nullable: false),
                    claimed_by = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    claimed_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    lease_expires_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    reclaimed = table.Column<bool>(type: "boolean", nullable: false),
                    completed_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_dispatch_batches", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "gong_calls",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    batch_id = table.Column<Guid>(type: "uuid", nullable: true),
                    endpoint = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    flow_id = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    owner_email = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    prospect_count = table.Column<int>(type: "integer", nullable: false),
                    http_status = table.Column<int>(type: "integer", nullable: true),
                    gong_request_id = table.Column<string>(type: "text", nullable: true),
                    outcome_class = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    error = table.Column<string>(type: "text", nullable: true),
                    retry_after_seconds = table.Column<double>(type: "double precision", nullable: true),
                    started_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    duration_ms = table.Column<double>(type: "double precision", nullable: false),
                    replica = table.Column<string>(type: "text", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_gong_calls", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "outbox_messages",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    assignment_request_id = table.Column<long>(type: "bigint", nullable: true),
                    message_type = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    payload = table.Column<string>(type: "jsonb", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    published_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    attempts = table.Column<int>(type: "integer", nullable: false),
                    last_error = table.Column<string>(type: "text", nullable: true),
                    locked_until = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    available_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_outbox_messages", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "rate_gate",
                columns: table => new
                {
                    id = table.Column<int>(type: "integer", nullable: false),
                    next_slot_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    blocked_until = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    blocked_reason = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: true),
                    day = table.Column<DateOnly>(type: "date", nullable: false),
                    day_call_count = table.Column<int>(type: "integer", nullable: false),
                    recent_starts = table.Column<List<DateTimeOffset>>(type: "timestamptz[]", nullable: false),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_rate_gate", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "prospect_assignments",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    assignment_request_id = table.Column<long>(type: "bigint", nullable: false),
                    crm_prospect_id = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    flow_id = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    owner_email = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    status = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    flow_instance_id = table.Column<string>(type: "text", nullable: true),
                    flow_instance_status = table.Column<string>(type: "text", nullable: true),
                    error_code = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    error_message = table.Column<string>(type: "text", nullable: true),
                    gong_request_id = table.Column<string>(type: "text", nullable: true),
                    reconciled = table.Column<bool>(type: "boolean", nullable: false),
                    reconcile_first = table.Column<bool>(type: "boolean", nullable: false),
                    attempts = table.Column<int>(type: "integer", nullable: false),
                    batch_id = table.Column<Guid>(type: "uuid", nullable: true),
                    available_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    completed_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_prospect_assignments", x => x.id);
                    table.ForeignKey(
                        name: "fk_prospect_assignments_assignment_requests_assignment_request",
                        column: x => x.assignment_request_id,
                        principalTable: "assignment_requests",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_assignment_requests_received_at",
                table: "assignment_requests",
                column: "received_at");

            migrationBuilder.CreateIndex(
                name: "ix_assignment_requests_request_id",
                table: "assignment_requests",
                column: "request_id",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_assignment_requests_status_completed_at",
                table: "assignment_requests",
                columns: new[] { "status", "completed_at" });

            migrationBuilder.CreateIndex(
                name: "ix_dispatch_batches_lease_expires_at",
                table: "dispatch_batches",
                column: "lease_expires_at",
                filter: "completed_at IS NULL");

            migrationBuilder.CreateIndex(
                name: "ix_gong_calls_batch_id",
                table: "gong_calls",
                column: "batch_id");

            migrationBuilder.CreateIndex(
                name: "ix_gong_calls_started_at",
                table: "gong_calls",
                column: "started_at");

            migrationBuilder.CreateIndex(
                name: "ix_outbox_messages_assignment_request_id",
                table: "outbox_messages",
                column: "assignment_request_id");

            migrationBuilder.CreateIndex(
                name: "ix_outbox_messages_unpublished",
                table: "outbox_messages",
                columns: new[] { "available_at", "created_at" },
                filter: "published_at IS NULL");

            migrationBuilder.CreateIndex(
                name: "ix_prospect_assignments_assignment_request_id_crm_prospect_id",
                table: "prospect_assignments",
                columns: new[] { "assignment_request_id", "crm_prospect_id" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_prospect_assignments_batch_id",
                table: "prospect_assignments",
                column: "batch_id",
                filter: "batch_id IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_prospect_assignments_crm_prospect_id",
                table: "prospect_assignments",
                column: "crm_prospect_id");

            migrationBuilder.CreateIndex(
                name: "ix_prospect_assignments_pending_by_group",
                table: "prospect_assignments",
                columns: new[] { "flow_id", "owner_email", "available_at", "id" },
                filter: "status = 'Pending'");

            migrationBuilder.CreateIndex(
                name: "ix_prospect_assignments_status_updated_at",
                table: "prospect_assignments",
                columns: new[] { "status", "updated_at" });

            // The single shared rate-gate row every replica updates (seeded here, not with HasData:
            // its array column defeats EF's seed comparison).
            migrationBuilder.Sql(
                "INSERT INTO rate_gate (id, next_slot_at, blocked_until, blocked_reason, day, day_call_count, recent_starts, updated_at) " +
                "VALUES (1, 'epoch', NULL, NULL, DATE '1970-01-01', 0, '{}', 'epoch') ON CONFLICT (id) DO NOTHING;");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "dispatch_batches");

            migrationBuilder.DropTable(
                name: "gong_calls");

            migrationBuilder.DropTable(
                name: "outbox_messages");

            migrationBuilder.DropTable(
                name: "prospect_assignments");

            migrationBuilder.DropTable(
                name: "rate_gate");

            migrationBuilder.DropTable(
                name: "assignment_requests");
        }
    }
}
