using Worker.Contracts;
using Worker.Host.Ingest;

namespace Worker.UnitTests.Ingest;

public sealed class AssignmentValidatorTests
{
    private static readonly AssignProspectsToFlow Valid = new("r-1", "1695493301223590792", " Owner@Example.com ", ["a1", "a2"]);

    [Fact]
    public void A_valid_request_keeps_ids_in_first_seen_order_and_normalises_the_owner()
    {
        var result = AssignmentValidator.Validate(Valid with { CrmProspectIds = ["a2", "a1", "a2"] }, 10_000);
        Assert.False(result.IsRejected);
        Assert.Equal(["a2", "a1"], result.ValidIds);
        Assert.Equal("Owner@Example.com", result.OwnerEmail);
        Assert.Equal("owner@example.com", result.OwnerEmailNormalized);
    }

    [Fact]
    public void The_content_hash_ignores_id_order_duplicates_and_owner_case_but_not_the_ids()
    {
        var a = AssignmentValidator.Validate(Valid, 10_000).ContentHash;
        Assert.Equal(a, AssignmentValidator.Validate(Valid with { CrmProspectIds = ["a2", "a1", "a1"], FlowInstanceOwnerEmail = "owner@EXAMPLE.com" }, 10_000).ContentHash);
        Assert.NotEqual(a, AssignmentValidator.Validate(Valid with { CrmProspectIds = ["a1"] }, 10_000).ContentHash);
        Assert.Equal(64, a.Length);
    }

    [Fact]
    public void A_valid_owner_email_of_254_characters_is_kept_whole()
    {
        var email = new string('o', 64) + "@" + string.Join('.', Enumerable.Repeat(new string('d', 61), 3)) + ".com"; // 254
        Assert.Equal(254, email.Length);
        var result = AssignmentValidator.Validate(Valid with { FlowInstanceOwnerEmail = email }, 10_000);
        Assert.False(result.IsRejected);
        Assert.Equal(email, result.OwnerEmail);
    }

    [Fact]
    public void Values_cut_for_storage_never_split_a_surrogate_pair()
    {
        var emoji = char.ConvertFromUtf32(0x1F600);
        var result = AssignmentValidator.Validate(
            Valid with { FlowId = string.Concat(Enumerable.Repeat(emoji, 200)), CrmProspectIds = ["ok", string.Concat(Enumerable.Repeat(emoji, 300))] }, 10_000);
        Assert.True(result.IsRejected);
        Assert.Equal(-1, Worker.Host.Operations.UserText.LoneSurrogateIndex(result.FlowId));
        Assert.Equal(-1, Worker.Host.Operations.UserText.LoneSurrogateIndex(result.RejectedIds.Single().CrmProspectId));
        Assert.All(result.Errors, e => Assert.Equal(-1, Worker.Host.Operations.UserText.LoneSurrogateIndex(e)));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void No_usable_requestId_throws(string? requestId) =>
        Assert.Throws<UnusableRequestIdException>(() => AssignmentValidator.Validate(Valid with { RequestId = requestId }, 10_000));

    [Fact]
    public void Every_problem_is_named()
    {
        var result = AssignmentValidator.Validate(new AssignProspectsToFlow(new string('r', 129), "12ab", "not-an-email", []), 10_000);
        Assert.Equal(4, result.Errors.Count);
        Assert.StartsWith("requestId:", result.Errors[0], StringComparison.Ordinal);
        Assert.StartsWith("flowId:", result.Errors[1], StringComparison.Ordinal);
        Assert.StartsWith("flowInstanceOwnerEmail:", result.Errors[2], StringComparison.Ordinal);
        Assert.StartsWith("crmProspectIds:", result.Errors[3], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Name <owner@example.com>")]
    [InlineData("owner@localhost")]
    [InlineData("owner@@example.com")]
    [InlineData("own er@example.com")]
    public void Invalid_owner_emails_are_refused(string email) =>
        Assert.True(AssignmentValidator.Validate(Valid with { FlowInstanceOwnerEmail = email }, 10_000).IsRejected);

    [Fact]
    public void The_limit_comes_from_the_option()
    {
        var result = AssignmentValidator.Validate(Valid with { CrmProspectIds = ["a", "b", "c"] }, 2);
        Assert.Contains(result.Errors, e => e.Contains("3 ids; the limit is 2", StringComparison.Ordinal));
    }
}
