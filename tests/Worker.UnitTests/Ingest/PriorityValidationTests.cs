using System.Text.Json;
using Worker.Contracts;
using Worker.Host.Ingest;
using Worker.Persistence.Entities;

namespace Worker.UnitTests.Ingest;

/// <summary>The optional <c>priority</c> of <see cref="AssignProspectsToFlow"/> (issue 15).</summary>
public sealed class PriorityValidationTests
{
    private static readonly AssignProspectsToFlow Valid = new("r-1", "1695493301223590792", "owner@example.com", ["a1", "a2"]);

    [Theory]
    [InlineData(null, ProspectPriority.Normal)]
    [InlineData("normal", ProspectPriority.Normal)]
    [InlineData("high", ProspectPriority.High)]
    [InlineData("bulk", ProspectPriority.Bulk)]
    public void Known_values_and_absence_pick_a_lane(string? wire, ProspectPriority expected)
    {
        var result = AssignmentValidator.Validate(Valid with { Priority = wire }, 10_000);
        Assert.False(result.IsRejected, string.Join("; ", result.Errors));
        Assert.Equal(expected, result.Priority);
    }

    [Theory]
    [InlineData("urgent")]
    [InlineData("HIGH")]
    [InlineData("")]
    [InlineData(" high")]
    public void An_unknown_value_rejects_the_request_naming_the_field(string wire)
    {
        var result = AssignmentValidator.Validate(Valid with { Priority = wire }, 10_000);
        Assert.True(result.IsRejected);
        Assert.Null(result.Priority);
        Assert.Contains(result.Errors, e => e.StartsWith("priority: ", StringComparison.Ordinal));
    }

    [Fact]
    public void The_priority_is_not_part_of_the_request_identity()
    {
        var plain = AssignmentValidator.Validate(Valid, 10_000).ContentHash;
        Assert.Equal(plain, AssignmentValidator.Validate(Valid with { Priority = "high" }, 10_000).ContentHash);
        Assert.Equal(plain, AssignmentValidator.Validate(Valid with { Priority = "bulk" }, 10_000).ContentHash);
    }

    [Fact]
    public void A_message_written_before_the_field_existed_reads_as_normal()
    {
        var old = JsonSerializer.Deserialize<AssignProspectsToFlow>(
            """{"requestId":"r-old","flowId":"1","flowInstanceOwnerEmail":"owner@example.com","crmProspectIds":["a"]}""",
            new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        Assert.Null(old.Priority);
        Assert.Equal(ProspectPriority.Normal, AssignmentValidator.Validate(old, 10_000).Priority);
    }
}
