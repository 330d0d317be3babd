namespace Worker.Host.Dispatch;

/// <summary>The shared rate gate's block.</summary>
/// <param name="Until">No call starts before this instant (UTC).</param>
/// <param name="Reason">Why (the 429 and its Retry-After, or the daily budget); null when unknown.</param>
public sealed record GateBlock(DateTimeOffset Until, string? Reason);
