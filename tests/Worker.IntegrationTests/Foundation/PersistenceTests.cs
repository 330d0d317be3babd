using Microsoft.EntityFrameworkCore;
using Worker.Persistence.Entities;
using Worker.Testing;

namespace Worker.IntegrationTests.Foundation;

/// <summary>The migrated schema against real Postgres; the tests share one database (<see cref="DatabaseFixture"/>) and keep to their own request ids.</summary>
public sealed class PersistenceTests(DatabaseFixture shared) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task Migrations_are_applied_and_a_request_with_prospects_round_trips()
    {
        var database = shared.Database;
        var receivedAt = new DateTimeOffset(2026, 11, 29, 10, 0, 0, TimeSpan.Zero);

        await using (var db = database.CreateDbContext())
        {
            Assert.Empty(await db.Database.GetPendingMigrationsAsync());
            db.AssignmentRequests.Add(new AssignmentRequest
            {
                RequestId = "crm-sync-2026-11-29-000123",
                FlowId = "1695493301223590792",
                OwnerEmail = "Owner@Example.com",
                OwnerEmailNormalized = "owner@example.com",
                ContentHash = new string('a', 64),
                ProspectCount = 2,
                PendingCount = 2,
                ReceivedAt = receivedAt,
                Prospects =
                [
                    new ProspectAssignment { CrmProspectId = "a5V1Q00A120DP4CVAW", FlowId = "1695493301223590792", OwnerEmail = "owner@example.com", Status = ProspectAssignmentStatus.Pending, AvailableAt = receivedAt, CreatedAt = receivedAt, UpdatedAt = receivedAt },
                    new ProspectAssignment { CrmProspectId = "0035g00000XYZabAAB", FlowId = "1695493301223590792", OwnerEmail = "owner@example.com", Status = ProspectAssignmentStatus.Pending, AvailableAt = receivedAt, CreatedAt = receivedAt, UpdatedAt = receivedAt },
                ],
            });
            await db.SaveChangesAsync();
        }

        await using (var db = database.CreateDbContext())
        {
            var stored = await db.AssignmentRequests.Include(r => r.Prospects).SingleAsync(r => r.RequestId == "crm-sync-2026-11-29-000123");
            Assert.Equal("crm-sync-2026-11-29-000123", stored.RequestId);
            Assert.Equal(receivedAt, stored.ReceivedAt);
            Assert.Equal(["0035g00000XYZabAAB", "a5V1Q00A120DP4CVAW"], stored.Prospects.Select(p => p.CrmProspectId).Order(StringComparer.Ordinal));
            Assert.All(stored.Prospects, p => Assert.Equal(ProspectAssignmentStatus.Pending, p.Status));

            // Enums are stored as text and names are snake_case: what ops query by hand.
            await using var connection = await database.OpenConnectionAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT count(*) FROM prospect_assignments WHERE status = 'Pending' AND crm_prospect_id = 'a5V1Q00A120DP4CVAW'";
            Assert.Equal(1L, await command.ExecuteScalarAsync());
        }
    }

    [Fact]
    public async Task The_rate_gate_row_is_seeded_by_the_migration()
    {
        var database = shared.Database;
        await using var db = database.CreateDbContext();
        var gate = await db.RateGates.SingleAsync();
        Assert.Equal(1, gate.Id);
    }

    [Fact]
    public async Task A_duplicate_request_id_is_refused_by_the_unique_index()
    {
        var database = shared.Database;
        AssignmentRequest Request() => new()
        {
            RequestId = "dup-1", FlowId = "1", OwnerEmail = "a@b.c", OwnerEmailNormalized = "a@b.c",
            ContentHash = new string('b', 64), ReceivedAt = DateTimeOffset.UtcNow,
        };
        await using (var db = database.CreateDbContext())
        {
            db.AssignmentRequests.Add(Request());
            await db.SaveChangesAsync();
        }

        await using (var db = database.CreateDbContext())
        {
            db.AssignmentRequests.Add(Request());
            var error = await Assert.ThrowsAsync<DbUpdateException>(() => db.SaveChangesAsync());
            Assert.Equal(Npgsql.PostgresErrorCodes.UniqueViolation, Assert.IsType<Npgsql.PostgresException>(error.InnerException).SqlState);
        }
    }
}
