using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Worker.Persistence.Migrations
{
    /// <inheritdoc />
    public partial class RateGateController : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<double>(
                name: "allowed_rate",
                table: "rate_gate",
                type: "double precision",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "batch_limit_learned_at",
                table: "rate_gate",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "batch_limit_max_batch_size",
                table: "rate_gate",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "batch_limit_reason",
                table: "rate_gate",
                type: "character varying(512)",
                maxLength: 512,
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "learned_batch_limit",
                table: "rate_gate",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "margin_seconds",
                table: "rate_gate",
                type: "double precision",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "rate_changed_at",
                table: "rate_gate",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "rate_reason",
                table: "rate_gate",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "allowed_rate",
                table: "rate_gate");

            migrationBuilder.DropColumn(
                name: "batch_limit_learned_at",
                table: "rate_gate");

            migrationBuilder.DropColumn(
                name: "batch_limit_max_batch_size",
                table: "rate_gate");

            migrationBuilder.DropColumn(
                name: "batch_limit_reason",
                table: "rate_gate");

            migrationBuilder.DropColumn(
                name: "learned_batch_limit",
                table: "rate_gate");

            migrationBuilder.DropColumn(
                name: "margin_seconds",
                table: "rate_gate");

            migrationBuilder.DropColumn(
                name: "rate_changed_at",
                table: "rate_gate");

            migrationBuilder.DropColumn(
                name: "rate_reason",
                table: "rate_gate");
        }
    }
}
