using Worker.Host.Operations;

namespace Worker.Host.Relay;

/// <summary>
/// In-process nudge from the dispatcher to the relay: outbox rows were just committed, publish now instead of at the
/// next poll. Rows written by other replicas are found by the relay's poll.
/// </summary>
internal sealed class OutboxSignal : WakeSignal;
