using System.Text;
using Worker.Host.Operations;

namespace Worker.UnitTests.Operations;

public sealed class UserTextTests
{
    private static readonly string Emoji = char.ConvertFromUtf32(0x1F600);
    private static readonly string Family = "👩‍👩‍👧"; // three emoji joined by ZWJ: one text element of 8 UTF-16 units

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(499)]
    [InlineData(500)]
    public void Truncate_never_splits_a_surrogate_pair_and_stays_within_the_limit(int max)
    {
        var value = string.Concat(Enumerable.Repeat(Emoji, 300));
        var cut = UserText.Truncate(value, max);
        Assert.True(cut.Length <= max);
        Assert.True(UserText.IsWellFormed(cut));
        _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetBytes(cut); // what Npgsql does
        Assert.EndsWith(UserText.Ellipsis, cut, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncate_keeps_emoji_sequences_and_combining_marks_whole()
    {
        Assert.Equal("ab" + UserText.Ellipsis, UserText.Truncate("ab" + Family + "cd", 9));
        Assert.Equal("ab" + Family + UserText.Ellipsis, UserText.Truncate("ab" + Family + "cd", 11));
        Assert.Equal("x" + UserText.Ellipsis, UserText.Truncate("xe\u0301\u0302yz", 4)); // e + two marks is one element of 3 units
    }

    [Fact]
    public void Prefix_of_a_single_huge_text_element_falls_back_to_a_scalar_boundary()
    {
        var zalgo = "a" + new string('\u0301', 300) + Emoji;
        Assert.Equal(zalgo[..10], UserText.Prefix(zalgo, 10));
        var marked = Emoji + new string('\u0301', 20); // the marks attach to the emoji: one element of 22 units
        Assert.Equal(Emoji + new string('\u0301', 7), UserText.Prefix(marked, 9));
        Assert.Equal(string.Empty, UserText.Prefix(marked, 1)); // never half a pair
    }

    [Fact]
    public void Scrub_replaces_lone_surrogates_and_NUL_and_keeps_pairs_and_length()
    {
        var value = "a\uD83D" + Emoji + "\uDC00b\0";
        var scrubbed = UserText.Scrub(value);
        Assert.Equal("a\uFFFD" + Emoji + "\uFFFDb\uFFFD", scrubbed);
        Assert.Equal(value.Length, scrubbed.Length);
        Assert.Equal(1, UserText.LoneSurrogateIndex(value));
        Assert.Equal(-1, UserText.LoneSurrogateIndex(scrubbed));
    }

    [Fact]
    public void Describe_quotes_well_formed_text_only()
    {
        Assert.Equal("\"a\uFFFD\" (2 characters)", UserText.Describe("a\uD800"));
        Assert.Equal("3 characters including the control character U+0001", UserText.Describe("a\u0001b"));
        var described = UserText.Describe(string.Concat(Enumerable.Repeat(Emoji, 40)));
        Assert.Equal("80 characters starting \"" + string.Concat(Enumerable.Repeat(Emoji, 16)) + "\"", described);
    }

    [Fact]
    public void EmailMask_keeps_the_whole_first_character()
    {
        Assert.Equal(Emoji + "***@example.com", EmailMask.Mask(Emoji + "owner@example.com"));
        Assert.Equal("e\u0301***@example.com", EmailMask.Mask("e\u0301mile@example.com"));
        Assert.Equal("o***@ex\uFFFDmple.com", EmailMask.Mask("owner@ex\uD800mple.com"));
    }
}
