using Worker.Host.Operations;

namespace Worker.UnitTests.Operations;

public sealed class EmailMaskTests
{
    [Theory]
    [InlineData("owner@example.com", "o***@example.com")]
    [InlineData("Owner.Name+tag@Sub.Example.COM", "O***@Sub.Example.COM")]
    [InlineData("a@b.co", "a***@b.co")]
    [InlineData("@example.com", "***@example.com")]
    [InlineData("not-an-email", "***")]
    [InlineData("", "")]
    [InlineData(null, "")]
    public void Keeps_the_first_character_and_the_domain_only(string? email, string expected) =>
        Assert.Equal(expected, EmailMask.Mask(email));

    [Fact]
    public void The_mask_does_not_reveal_the_length_of_the_local_part() =>
        Assert.Equal(EmailMask.Mask("ab@example.com").Length, EmailMask.Mask("abcdefghijklmnop@example.com").Length);
}
