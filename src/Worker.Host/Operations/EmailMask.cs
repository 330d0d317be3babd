namespace Worker.Host.Operations;

/// <summary>
/// Masks owner emails before they reach a log or a terminal: the first character of the local part and the whole
/// domain stay, so a flow's owner can still be told apart from another without the address being exposed.
/// </summary>
public static class EmailMask
{
    /// <summary>
    /// <c>owner@example.com</c> becomes <c>o***@example.com</c>; a value without <c>@</c> becomes <c>***</c>;
    /// null or empty becomes an empty string. The mask length never depends on the address length. The kept first
    /// character is a whole text element (<see cref="UserText.FirstTextElement"/>), never half a surrogate pair.
    /// </summary>
    /// <param name="email">An email address (any case), or null.</param>
    public static string Mask(string? email)
    {
        if (string.IsNullOrEmpty(email))
        {
            return string.Empty;
        }

        var at = email.LastIndexOf('@');
        if (at < 0)
        {
            return "***";
        }

        // The first text element, not the first UTF-16 unit: an address starting with an emoji or an accented letter
        // written as a letter plus a combining mark keeps that whole character (a lone surrogate is not valid text).
        var domain = UserText.Scrub(email[(at + 1)..]);
        return at == 0 ? "***@" + domain : string.Concat(UserText.FirstTextElement(email[..at]), "***@", domain);
    }
}
