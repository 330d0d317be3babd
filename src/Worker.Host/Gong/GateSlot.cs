namespace Worker.Host.Gong;

/// <summary>The result of asking the rate gate for a slot.</summary>
/// <param name="Taken">True when the slot is ours and its time has come; false when it lies beyond <c>MaxGateWait</c>.</param>
/// <param name="At">The slot (UTC, on this process's clock); when not taken, the earliest instant the gate would give one.</param>
/// <param name="Reason">When not taken: why (the block reason).</param>
/// <param name="Waited">Time spent in the gate.</param>
/// <param name="StartNoLaterThan">Latest start that keeps the window guarantee (slot + <see cref="GateMargin.LateStart"/>: half the base margin, more while the process is young; this process's clock).</param>
/// <param name="ScheduledAt">The slot on the gate's own clock (the database's by default), as stored in the schedule.</param>
/// <param name="Margin">The margin the call is recorded with (its latest arrival is ScheduledAt + Margin).</param>
/// <param name="MovedBy">How much later than taken the slot is, after a late caller moved it
/// (<see cref="PostgresRateGate.ReclaimAsync"/>: at most <see cref="PostgresRateGate.MaxMove"/>); zero when it was
/// not moved. A moved slot is that much closer to the slot taken after it than the spacing of 1 s / allowed rate (the
/// one-second window still holds).</param>
internal sealed record GateSlot(bool Taken, DateTimeOffset At, string? Reason, TimeSpan Waited, DateTimeOffset StartNoLaterThan, DateTimeOffset ScheduledAt, TimeSpan Margin, TimeSpan MovedBy = default);
