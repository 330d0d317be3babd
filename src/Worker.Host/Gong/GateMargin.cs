namespace Worker.Host.Gong;

/// <summary>
/// How a call is recorded in the rate gate and how late it may start: its latest arrival is its slot plus
/// <see cref="Margin"/>, and a caller that reaches its connection later than slot plus <see cref="LateStart"/> sends
/// nothing (it moves or gives up the slot). Taken together from <see cref="RateGatePacing.ForCall"/>, so the lateness a
/// call may spend is the part of its margin the network does not need.
/// </summary>
/// <param name="Margin">Latest arrival after the slot (base margin plus jitter allowance, plus the cold allowance when
/// the call may open its connection; 0–10 s).</param>
/// <param name="LateStart">Latest start after the slot: half the base margin, plus, while the process is young, what
/// its young allowance holds beyond the measured jitter and a reserve for stalls after the start (ms; never more than
/// <paramref name="Margin"/>).</param>
internal readonly record struct GateMargin(TimeSpan Margin, TimeSpan LateStart);
