namespace Worker.IntegrationTests.Dispatch;

/// <summary>Waits for a condition by polling with a deadline (no fixed sleeps in the assertions).</summary>
internal static class Poll
{
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, Action? eachRound = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await condition())
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out after {timeout} waiting for: {what}");
            }

            eachRound?.Invoke();
            await Task.Delay(25);
        }
    }

    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, Action? eachRound = null) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, what, eachRound);
}
