using System.Globalization;
using System.Text.Json;

namespace Gong.Simulator;

/// <summary>
/// Everything the simulator remembers: flow instances (assignments), the call log, the rate limit windows, the
/// current faults and the seeded random source. Thread-safe; one instance per running simulator.
/// </summary>
public sealed class SimulatorState
{
    private static readonly string[] OpenStatuses = ["Pending", "Running", "Paused"];
    private static readonly List<int> DefaultServerErrorStatuses = [500, 502, 503];

    private readonly Lock _lock = new();
    private readonly Dictionary<string, List<FlowInstance>> _instances = new(StringComparer.Ordinal);
    private readonly HashSet<string> _transientSeen = new(StringComparer.Ordinal);
    private readonly List<CallRecord> _calls = [];
    private readonly List<DateTimeOffset> _acceptedInLastSecond = [];
    private readonly List<DateTimeOffset> _ownAcceptedInLastSecond = [];
    private readonly Queue<ScriptedFault> _script = new();
    private Random _random;
    private FaultOptions _faults;
    private RateLimitOptions _rateLimit;
    private DateTime _day;
    private int _dailyCalls;
    private long _nextInstanceId;
    private long _instanceCounter;
    private int _assignments;
    private int _seeded;
    private int _notAssigned;
    private int _duplicateAssignAttempts;
    private int _duplicateOfApi;
    private int _callsWithDuplicateIds;
    private int _largestBatch;
    private int _waitingCalls;
    private int _abandonedCalls;
    private int _foreignCalls;
    private int _foreignRateLimited;
    private CancellationTokenSource _faultsChanged = new();

    /// <summary>Creates the state from <paramref name="options"/>, seeding its assignments.</summary>
    public SimulatorState(SimulatorOptions options, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        Options = options;
        Time = timeProvider;
        _random = new Random(options.Seed);
        _faults = new FaultOptions();
        _rateLimit = new RateLimitOptions();
        Reset();
    }

    /// <summary>The start-time options.</summary>
    public SimulatorOptions Options { get; }

    /// <summary>The clock every decision reads (rate limit, 401 periods, dates, latency).</summary>
    public TimeProvider Time { get; }

    /// <summary>
    /// In-process hook for tests: awaited after an assign call's assignments are committed and before its answer is
    /// sent (and before the call is logged), with the call (Sequence 0; Committed, Assigned, NotAssigned set) and a
    /// token cancelled when the client leaves or the simulator stops. A hook that waits until then loses the answer
    /// (logged with status 0 and fault <c>AfterCommitHook</c>). Null (the default) = no hook.
    /// </summary>
    public Func<CallRecord, CancellationToken, Task>? AfterCommit { get; set; }

    /// <summary>The current faults, with the scripted faults not yet consumed.</summary>
    public FaultOptions Faults
    {
        get
        {
            lock (_lock)
            {
                var copy = Clone(_faults);
                copy.Script = [.. _script];
                return copy;
            }
        }
    }

    /// <summary>The current rate limit.</summary>
    public RateLimitOptions RateLimit
    {
        get
        {
            lock (_lock)
            {
                return Clone(_rateLimit);
            }
        }
    }

    /// <summary>Replaces the faults as a whole (unset fields take their defaults); the script restarts from <paramref name="faults"/>.</summary>
    public void SetFaults(FaultOptions faults)
    {
        ArgumentNullException.ThrowIfNull(faults);
        var copy = Clone(faults);
        if (copy.UnauthorizedForSeconds is { } seconds)
        {
            copy.UnauthorizedUntil = Time.GetUtcNow().AddSeconds(seconds);
            copy.UnauthorizedForSeconds = null;
        }

        if (copy.ServerErrorStatuses.Count == 0)
        {
            copy.ServerErrorStatuses = [.. DefaultServerErrorStatuses];
        }

        CancellationTokenSource changed;
        lock (_lock)
        {
            _faults = copy;
            _script.Clear();
            foreach (var step in copy.Script)
            {
                _script.Enqueue(step);
            }

            copy.Script = [];
            changed = _faultsChanged;
            _faultsChanged = new CancellationTokenSource();
        }

        // Wakes the foreign-traffic loop so a new ForeignCallsPerSecond applies at once.
        changed.Cancel();
        changed.Dispose();
    }

    /// <summary>Replaces the rate limit; the windows already counted stay.</summary>
    public void SetRateLimit(RateLimitOptions rateLimit)
    {
        ArgumentNullException.ThrowIfNull(rateLimit);
        var copy = Clone(rateLimit);
        lock (_lock)
        {
            _rateLimit = copy;
        }
    }

    /// <summary>Forgets every assignment, call and counter; restores the start options' faults, rate limit and seeds.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _instances.Clear();
            _transientSeen.Clear();
            _calls.Clear();
            _acceptedInLastSecond.Clear();
            _ownAcceptedInLastSecond.Clear();
            _foreignCalls = 0;
            _foreignRateLimited = 0;
            _random = new Random(Options.Seed);
            _rateLimit = Clone(Options.RateLimit);
            _day = default;
            _dailyCalls = 0;
            _nextInstanceId = 1_695_000_000_000_000_000L + _random.NextInt64(1_000_000_000_000_000L);
            _instanceCounter = 0;
            _assignments = 0;
            _seeded = 0;
            _notAssigned = 0;
            _duplicateAssignAttempts = 0;
            _duplicateOfApi = 0;
            _callsWithDuplicateIds = 0;
            _largestBatch = 0;
        }

        SetFaults(Options.Faults);
        AddAssignments(Options.SeedAssignments);
    }

    /// <summary>Puts prospects into flows without a call (as if done in Gong's UI); they count as seeded, not as assignments.</summary>
    public void AddAssignments(IEnumerable<SeedAssignment> seeds)
    {
        ArgumentNullException.ThrowIfNull(seeds);
        lock (_lock)
        {
            var now = Time.GetUtcNow();
            foreach (var seed in seeds)
            {
                var flow = ResolveFlow(seed.FlowId) ?? new FlowDefinition { Id = seed.FlowId };
                CreateInstance(seed.CrmProspectId, flow, seed.OwnerEmail, seed.Status, now, fromSeed: true);
                _seeded++;
            }
        }
    }

    /// <summary>
    /// The open flow instances (Pending, Running, Paused) of <paramref name="crmProspectIds"/>, as the lookup
    /// endpoint returns them; instances younger than <see cref="SimulatorOptions.LookupVisibilityDelayMs"/> are hidden.
    /// </summary>
    public IReadOnlyList<GongAssignedFlow> FindOpenInstances(IEnumerable<string> crmProspectIds)
    {
        ArgumentNullException.ThrowIfNull(crmProspectIds);
        var visibleBefore = Time.GetUtcNow().AddMilliseconds(-Options.LookupVisibilityDelayMs);
        var found = new List<GongAssignedFlow>();
        lock (_lock)
        {
            foreach (var id in crmProspectIds.Distinct(StringComparer.Ordinal))
            {
                if (!_instances.TryGetValue(id, out var list))
                {
                    continue;
                }

                found.AddRange(list.Where(i => i.IsOpen && i.CreatedAt <= visibleBefore).Select(i => i.ToWire()));
            }
        }

        return found;
    }

    /// <summary>The call log, oldest first; only records with a sequence above <paramref name="afterSequence"/>.</summary>
    public IReadOnlyList<CallRecord> GetCalls(long afterSequence = 0)
    {
        lock (_lock)
        {
            return _calls.Where(c => c.Sequence > afterSequence).ToList();
        }
    }

    /// <summary>Aggregates over the call log and the assignments.</summary>
    public SimulatorStats GetStats()
    {
        lock (_lock)
        {
            var byStatus = _calls.GroupBy(c => c.Status.ToString(CultureInfo.InvariantCulture))
                .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
            var byEndpoint = _calls.GroupBy(c => c.Endpoint).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
            return new SimulatorStats(
                _calls.Count,
                byStatus,
                byEndpoint,
                MaxInAnyOneSecond(_calls.Select(c => c.Time)),
                MaxInAnyOneSecond(_calls.Where(c => c.Status is not (401 or 429)).Select(c => c.Time)),
                _calls.Count(c => c.Status == 429),
                _dailyCalls,
                _assignments,
                _seeded,
                _notAssigned,
                _duplicateAssignAttempts,
                _duplicateOfApi,
                _callsWithDuplicateIds,
                _largestBatch,
                _calls.Count(c => c.SelfCausedRateLimited == true),
                _foreignCalls,
                _foreignRateLimited);
        }
    }

    internal static int MaxInAnyOneSecond(IEnumerable<DateTimeOffset> times)
    {
        var sorted = times.OrderBy(t => t).ToArray();
        var best = 0;
        var start = 0;
        for (var end = 0; end < sorted.Length; end++)
        {
            while (sorted[end] - sorted[start] >= TimeSpan.FromSeconds(1))
            {
                start++;
            }

            best = Math.Max(best, end - start + 1);
        }

        return best;
    }

    /// <summary>Calls currently held by a latency, timeout or slow-commit delay (the delay's timer already exists): a test
    /// waits on it to act while a call is in progress.</summary>
    public int WaitingCalls => Volatile.Read(ref _waitingCalls);

    /// <summary>Slow-commit calls whose client left while Gong kept working on them, as the server saw it (the
    /// request's abort): such a call commits later and is recorded with status 0. A test waits on it before it moves the
    /// clock to the commit, since the server learns of a client's leaving a little after the client left.</summary>
    public int AbandonedCalls => Volatile.Read(ref _abandonedCalls);

    /// <summary>Counts a slow-commit call whose client left (<see cref="AbandonedCalls"/>).</summary>
    internal void NoteAbandoned() => Interlocked.Increment(ref _abandonedCalls);

    /// <summary>Waits on <see cref="Time"/>; counted in <see cref="WaitingCalls"/> only once the timer is created.</summary>
    internal async Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        var wait = Task.Delay(delay, Time, cancellationToken);
        Interlocked.Increment(ref _waitingCalls);
        try
        {
            await wait.ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _waitingCalls);
        }
    }

    internal string NewRequestId()
    {
        const string alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
        Span<char> chars = stackalloc char[19];
        lock (_lock)
        {
            for (var i = 0; i < chars.Length; i++)
            {
                chars[i] = alphabet[_random.Next(alphabet.Length)];
            }
        }

        return new string(chars);
    }

    internal FaultOptions CurrentFaults()
    {
        lock (_lock)
        {
            return _faults;
        }
    }

    /// <summary>
    /// Counts the call against the per-second and daily limits at the instant it arrived at the door
    /// (<paramref name="arrived"/>: after the simulated network, before the body is read and parsed, as a gateway counts
    /// it; never later than now), or says how long to wait (whole seconds, at least 1). Every call accepted since
    /// <paramref name="arrived"/> minus 1 s counts, also one decided earlier that arrived later (a window holding both
    /// is checked), so a call decided out of its arrival order is judged by arrival times all the same. A refusal of the
    /// per-second limit is self-caused when this client's own accepted calls alone already fill the window.
    /// </summary>
    internal RateDecision TryAcquireRateSlot(DateTimeOffset arrived) => TryAcquire(foreign: false, arrived);

    /// <summary>The faults in force and a token cancelled when they are replaced (wakes the foreign-traffic loop).</summary>
    internal (FaultOptions Faults, CancellationToken Changed) FaultsWithChangeToken()
    {
        lock (_lock)
        {
            return (_faults, _faultsChanged.Token);
        }
    }

    /// <summary>One call of another client of the same company: counted like ours when the window has room.</summary>
    internal void SpendForeignCall()
    {
        var decision = TryAcquire(foreign: true);
        lock (_lock)
        {
            _foreignCalls++;
            if (!decision.Accepted)
            {
                _foreignRateLimited++;
            }
        }
    }

    /// <summary>Extra delay before a request reaches the endpoints: jitter in [0, ArrivalJitterMs] plus, on a new
    /// connection, NewConnectionDelayMs.</summary>
    internal TimeSpan PickArrivalDelay(bool newConnection)
    {
        lock (_lock)
        {
            var ms = _faults.ArrivalJitterMs > 0 ? _random.NextDouble() * _faults.ArrivalJitterMs : 0;
            if (newConnection)
            {
                ms += Math.Max(0, _faults.NewConnectionDelayMs);
            }

            return TimeSpan.FromMilliseconds(ms);
        }
    }

    private RateDecision TryAcquire(bool foreign, DateTimeOffset? arrived = null)
    {
        lock (_lock)
        {
            var clock = Time.GetUtcNow();
            var now = arrived is { } at && at < clock ? at : clock;
            var limit = _rateLimit;
            Forget(_acceptedInLastSecond, clock);
            Forget(_ownAcceptedInLastSecond, clock);
            if (limit.RequestsPerSecond > 0 && WouldFill(_acceptedInLastSecond, now, limit.RequestsPerSecond))
            {
                var wait = _acceptedInLastSecond.First(t => now - t < TimeSpan.FromSeconds(1)).AddSeconds(1) - now;
                var selfCaused = !foreign && WouldFill(_ownAcceptedInLastSecond, now, limit.RequestsPerSecond);
                return new RateDecision(now, false, WholeSeconds(wait), limit.RetryAfterMode, "API request limit exceeded: too many requests per second", selfCaused);
            }

            var day = now.UtcDateTime.Date;
            if (day > _day)
            {
                _day = day;
                _dailyCalls = 0;
            }

            if (limit.DailyCallLimit > 0 && _dailyCalls >= limit.DailyCallLimit)
            {
                var wait = new DateTimeOffset(day.AddDays(1), TimeSpan.Zero) - now;
                return new RateDecision(now, false, WholeSeconds(wait), limit.RetryAfterMode, "API request limit exceeded: daily quota spent", false);
            }

            Insert(_acceptedInLastSecond, now);
            if (!foreign)
            {
                Insert(_ownAcceptedInLastSecond, now);
            }

            _dailyCalls++;
            return new RateDecision(now, true, 0, limit.RetryAfterMode, null, false);
        }
    }

    /// <summary>Whether accepting an arrival at <paramref name="at"/> would put <paramref name="limit"/> + 1 arrivals
    /// within one second: some window starting at an accepted arrival (or at <paramref name="at"/>) no later than
    /// <paramref name="at"/> and less than 1 s before it holds <paramref name="limit"/> accepted arrivals besides it,
    /// counting arrivals decided earlier that came later.</summary>
    private static bool WouldFill(List<DateTimeOffset> accepted, DateTimeOffset at, int limit)
    {
        var second = TimeSpan.FromSeconds(1);
        foreach (var start in accepted.Where(t => t <= at && at - t < second).Append(at))
        {
            if (accepted.Count(t => t >= start && t - start < second) >= limit)
            {
                return true;
            }
        }

        return false;
    }

    private static void Insert(List<DateTimeOffset> accepted, DateTimeOffset at)
    {
        var index = accepted.FindLastIndex(t => t <= at) + 1;
        accepted.Insert(index, at);
    }

    /// <summary>Drops arrivals no pending decision can still see: a call is decided within a few seconds of its arrival
    /// (the body read), so 10 s of history is kept.</summary>
    private static void Forget(List<DateTimeOffset> accepted, DateTimeOffset clock) =>
        accepted.RemoveAll(t => clock - t >= TimeSpan.FromSeconds(10));

    internal RetryAfterMode CurrentRetryAfterMode()
    {
        lock (_lock)
        {
            return _rateLimit.RetryAfterMode;
        }
    }

    /// <summary>
    /// Dequeues the next scripted fault when it is for <paramref name="endpoint"/> and one of <paramref name="kinds"/>
    /// (the stage the call has reached); a call refused earlier leaves it for the next call.
    /// </summary>
    internal ScriptedFault? TakeScriptedFault(string endpoint, params FaultKind[] kinds)
    {
        lock (_lock)
        {
            if (_script.TryPeek(out var next)
                && string.Equals(next.Endpoint, endpoint, StringComparison.OrdinalIgnoreCase)
                && kinds.Contains(next.Kind))
            {
                return _script.Dequeue();
            }

            return null;
        }
    }

    internal FaultKind? RollRandomFault(FaultOptions faults)
    {
        double roll;
        lock (_lock)
        {
            roll = _random.NextDouble();
        }

        (double Rate, FaultKind Kind)[] table =
        [
            (faults.ErrorBeforeCommitRate, FaultKind.ErrorBeforeCommit),
            (faults.ErrorAfterCommitRate, FaultKind.ErrorAfterCommit),
            (faults.ResetAfterCommitRate, FaultKind.ResetAfterCommit),
            (faults.TimeoutAfterCommitRate, FaultKind.TimeoutAfterCommit),
        ];
        var cumulative = 0.0;
        foreach (var (rate, kind) in table)
        {
            cumulative += Math.Max(0, rate);
            if (roll < cumulative)
            {
                return kind;
            }
        }

        return null;
    }

    internal int PickServerErrorStatus(FaultOptions faults)
    {
        var statuses = faults.ServerErrorStatuses.Count > 0 ? faults.ServerErrorStatuses : DefaultServerErrorStatuses;
        lock (_lock)
        {
            return statuses[_random.Next(statuses.Count)];
        }
    }

    internal TimeSpan PickLatency(FaultOptions faults, int prospectCount)
    {
        double ms;
        lock (_lock)
        {
            if (faults.LatencyMeanMs is { } mean)
            {
                ms = mean + ((_random.NextDouble() * 2) - 1) * faults.LatencyJitterMs;
            }
            else
            {
                var max = Math.Max(faults.LatencyMinMs, faults.LatencyMaxMs);
                ms = faults.LatencyMinMs + (_random.NextDouble() * (max - faults.LatencyMinMs));
            }
        }

        ms += faults.LatencyPerProspectMs * prospectCount;
        return TimeSpan.FromMilliseconds(Math.Max(0, ms));
    }

    /// <summary>The flow for <paramref name="flowId"/>, or null when it does not exist (404).</summary>
    internal FlowDefinition? ResolveFlow(string flowId)
    {
        var configured = Options.Flows.FirstOrDefault(f => f.Id == flowId);
        if (configured is not null)
        {
            return configured;
        }

        if (!Options.AnyDigitsFlowExists || Options.MissingFlowIds.Contains(flowId) || flowId.Length == 0 || !flowId.All(char.IsAsciiDigit))
        {
            return null;
        }

        return new FlowDefinition { Id = flowId };
    }

    /// <summary>Decides and commits every prospect of one assign call.</summary>
    internal GongAssignResponse Assign(string requestId, FlowDefinition flow, string ownerEmail, IReadOnlyList<string> ids)
    {
        var assigned = new List<GongAssignedFlow>();
        var notAssigned = new List<GongAssignFailure>();
        var seenInCall = new HashSet<string>(StringComparer.Ordinal);
        lock (_lock)
        {
            var now = Time.GetUtcNow();
            _largestBatch = Math.Max(_largestBatch, ids.Count);
            var hasDuplicates = false;
            foreach (var id in ids)
            {
                hasDuplicates |= !seenInCall.Add(id);
                if (HasPrefix(id, Options.MissingFromAnswerIdPrefix))
                {
                    continue;
                }

                var failure = Decide(id, flow);
                if (failure is { } f)
                {
                    notAssigned.Add(new GongAssignFailure(flow.Id, id, f.Code, f.Message));
                    continue;
                }

                assigned.Add(CreateInstance(id, flow, ownerEmail, Options.NewInstanceStatus, now, fromSeed: false).ToWire());
                _assignments++;
            }

            _notAssigned += notAssigned.Count;
            if (hasDuplicates)
            {
                _callsWithDuplicateIds++;
            }
        }

        return new GongAssignResponse(requestId, assigned, notAssigned);
    }

    private (string Code, string Message)? Decide(string id, FlowDefinition flow)
    {
        if (string.IsNullOrWhiteSpace(id) || HasPrefix(id, Options.InvalidArgumentIdPrefix))
        {
            return (GongErrorCodes.InvalidArgument, $"Invalid crmId <{id}>");
        }

        if (HasPrefix(id, Options.UnexpectedErrorIdPrefix))
        {
            return (GongErrorCodes.UnexpectedError, $"Unexpected error assigning prospect {id}");
        }

        if (HasPrefix(id, Options.InvalidStateIdPrefix))
        {
            return (GongErrorCodes.InvalidState, $"Prospect {id} cannot be added to a flow during its cool-off period");
        }

        var open = _instances.TryGetValue(id, out var list) ? list.Where(i => i.IsOpen).ToList() : [];
        var same = open.FirstOrDefault(i => i.Flow.Id == flow.Id);
        if (same is not null)
        {
            _duplicateAssignAttempts++;
            if (!same.FromSeed)
            {
                _duplicateOfApi++;
            }

            return (GongErrorCodes.InvalidState, $"Prospect {id} is already in flow {flow.Id}");
        }

        var exclusive = open.FirstOrDefault(i => i.Flow.Exclusive);
        if (exclusive is not null)
        {
            return (GongErrorCodes.InvalidState, $"Prospect {id} is in exclusive flow {exclusive.Flow.Id} and cannot be added to other flows");
        }

        if (Options.SingleActiveFlowPerProspect && open.Count > 0)
        {
            return (GongErrorCodes.InvalidState, $"Prospect {id} is already in an active flow");
        }

        if (HasPrefix(id, Options.TransientUnexpectedErrorIdPrefix) && _transientSeen.Add(id))
        {
            return (GongErrorCodes.UnexpectedError, $"Unexpected error assigning prospect {id}; try again later");
        }

        return null;
    }

    internal void Record(CallRecord call)
    {
        lock (_lock)
        {
            _calls.Add(call with { Sequence = _calls.Count + 1 });
        }
    }

    private FlowInstance CreateInstance(string id, FlowDefinition flow, string ownerEmail, string status, DateTimeOffset now, bool fromSeed)
    {
        _nextInstanceId += 1 + _random.Next(997);
        var instance = new FlowInstance(
            id,
            flow,
            _nextInstanceId.ToString(CultureInfo.InvariantCulture),
            ownerEmail,
            OwnerName(ownerEmail),
            now,
            FormatCreateDate(now, _instanceCounter++),
            status,
            fromSeed);
        if (!_instances.TryGetValue(id, out var list))
        {
            list = [];
            _instances[id] = list;
        }

        list.Add(instance);
        return instance;
    }

    /// <summary>Rotates through the ISO-8601 forms Gong's page shows: 0, 3, 6 and 7 fractional digits, offsets and Z.</summary>
    internal static string FormatCreateDate(DateTimeOffset utc, long counter) => (counter % 4) switch
    {
        0 => utc.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture),
        1 => utc.ToOffset(TimeSpan.FromHours(-3)).ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture),
        2 => utc.ToOffset(new TimeSpan(5, 30, 0)).ToString("yyyy-MM-dd'T'HH:mm:ss.fffzzz", CultureInfo.InvariantCulture),
        _ => utc.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture),
    };

    private string OwnerName(string email)
    {
        if (Options.OwnerNames.TryGetValue(email, out var name))
        {
            return name;
        }

        var local = email.Split('@')[0];
        var parts = local.Split(['.', '_', '-', '+'], StringSplitOptions.RemoveEmptyEntries)
            .Select(p => char.ToUpperInvariant(p[0]) + p[1..]);
        return string.Join(' ', parts);
    }

    private static bool HasPrefix(string id, string? prefix) =>
        !string.IsNullOrEmpty(prefix) && id.StartsWith(prefix, StringComparison.Ordinal);

    private static int WholeSeconds(TimeSpan wait) => Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));

    private static T Clone<T>(T value) =>
        JsonSerializer.Deserialize<T>(JsonSerializer.Serialize(value, SimulatorJson.Options), SimulatorJson.Options)!;

    private sealed record FlowInstance(
        string CrmProspectId,
        FlowDefinition Flow,
        string InstanceId,
        string OwnerEmail,
        string OwnerFullName,
        DateTimeOffset CreatedAt,
        string CreateDateText,
        string Status,
        bool FromSeed)
    {
        public bool IsOpen => OpenStatuses.Contains(Status, StringComparer.OrdinalIgnoreCase);

        public GongAssignedFlow ToWire() => new(
            Flow.Id,
            Flow.Name ?? $"Flow {Flow.Id}",
            CrmProspectId,
            InstanceId,
            OwnerEmail,
            OwnerFullName,
            CreateDateText,
            Status,
            Flow.WorkspaceId,
            Flow.Exclusive);
    }
}

/// <summary>Outcome of a rate-limit check.</summary>
internal readonly record struct RateDecision(DateTimeOffset At, bool Accepted, int RetryAfterSeconds, RetryAfterMode Mode, string? Message, bool SelfCaused);
