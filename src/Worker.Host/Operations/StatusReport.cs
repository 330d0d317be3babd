using System.Globalization;
using Npgsql;
using Spectre.Console;
using Spectre.Console.Rendering;
using Worker.Host.Dispatch;

namespace Worker.Host.Operations;

/// <summary>
/// What the <c>status</c> subcommand prints: backlog per (flow, owner) group, outcomes and Gong calls of the last hour,
/// the shared rate gate and the outbox, read straight from the tables (no view needed).
/// </summary>
/// <param name="Now">When the report was read (UTC).</param>
/// <param name="Groups">Groups with Pending or InFlight prospects, oldest pending first.</param>
/// <param name="Outcomes">Final outcomes reached in the last hour, by status and error code.</param>
/// <param name="Calls">Gong calls of the last hour.</param>
/// <param name="Gate">The shared rate gate, or null when its row is missing (database not migrated).</param>
/// <param name="OutboxUnpublished">Outbox rows not yet published.</param>
/// <param name="OldestUnpublished">Creation time of the oldest unpublished outbox row.</param>
/// <param name="ExpiredLeases">Claimed batches whose lease ran out without completing (a replica died mid-batch).</param>
/// <param name="DailyCallLimit">Gong's daily call budget (<c>Gong:DailyCallLimit</c>, default 10,000).</param>
public sealed record StatusReport(
    DateTimeOffset Now,
    IReadOnlyList<BacklogGroup> Groups,
    IReadOnlyList<OutcomeCount> Outcomes,
    CallSummary Calls,
    RateGateState? Gate,
    long OutboxUnpublished,
    DateTimeOffset? OldestUnpublished,
    long ExpiredLeases,
    int DailyCallLimit)
{
    /// <summary>Groups shown in the table; the rest are summed in one line.</summary>
    public const int MaxGroupsShown = 25;

    /// <summary>Backlog, oldest age and throughput per priority lane (empty: not shown).</summary>
    public IReadOnlyList<PriorityLaneFigures> Lanes { get; init; } = [];

    private const string Sql = $"""
        SELECT flow_id, owner_email,
               count(*) FILTER (WHERE status = {StatusSql.Pending}),
               count(*) FILTER (WHERE status = {StatusSql.InFlight}),
               min(created_at) FILTER (WHERE status = {StatusSql.Pending})
        FROM prospect_assignments
        WHERE status IN ({StatusSql.Pending}, {StatusSql.InFlight})
        GROUP BY flow_id, owner_email
        ORDER BY 5 NULLS LAST, flow_id, owner_email;

        SELECT status, coalesce(error_code, ''), count(*)
        FROM prospect_assignments
        WHERE status IN ({StatusSql.Assigned}, {StatusSql.NotAssigned}, {StatusSql.Failed}, {StatusSql.Rejected}) AND updated_at >= @since AND completed_at >= @since
        GROUP BY 1, 2
        ORDER BY 1, 3 DESC, 2;

        SELECT count(*) FILTER (WHERE endpoint = 'assign'),
               coalesce(avg(prospect_count) FILTER (WHERE endpoint = 'assign'), 0),
               count(*) FILTER (WHERE endpoint <> 'assign'),
               count(*) FILTER (WHERE http_status = 429),
               count(*) FILTER (WHERE outcome_class <> 'Answered')
        FROM gong_calls
        WHERE started_at >= @since;

        SELECT blocked_until, blocked_reason, day, day_call_count,
               allowed_rate, rate_reason, rate_changed_at, margin_seconds,
               learned_batch_limit, batch_limit_learned_at, batch_limit_reason, batch_limit_max_batch_size
        FROM rate_gate WHERE id = 1;

        SELECT count(*), min(created_at) FROM outbox_messages WHERE published_at IS NULL AND failed_at IS NULL;

        SELECT count(*) FROM dispatch_batches WHERE completed_at IS NULL AND lease_expires_at < @now;
        """;

    /// <summary>Reads the report in one round trip.</summary>
    /// <param name="dataSource">The worker database.</param>
    /// <param name="now">The current time (UTC); "last hour" is <c>[now − 1 h, now]</c>.</param>
    /// <param name="dailyCallLimit">Gong's daily call budget to compare today's count with.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="NpgsqlException">The database cannot be reached or is not migrated.</exception>
    public static async Task<StatusReport> LoadAsync(NpgsqlDataSource dataSource, DateTimeOffset now, int dailyCallLimit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(Sql, connection);
        command.Parameters.AddWithValue("since", now.AddHours(-1));
        command.Parameters.AddWithValue("now", now);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);

        var groups = new List<BacklogGroup>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            groups.Add(new BacklogGroup(
                reader.GetString(0),
                reader.GetString(1),
                reader.GetInt64(2),
                reader.GetInt64(3),
                reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4)));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var outcomes = new List<OutcomeCount>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            outcomes.Add(new OutcomeCount(reader.GetString(0), reader.GetString(1), reader.GetInt64(2)));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var calls = new CallSummary(
            reader.GetInt64(0),
            Convert.ToDouble(reader.GetValue(1), CultureInfo.InvariantCulture),
            reader.GetInt64(2),
            reader.GetInt64(3),
            reader.GetInt64(4));

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        RateGateState? gate = null;
        if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            gate = new RateGateState(
                reader.IsDBNull(0) ? null : reader.GetFieldValue<DateTimeOffset>(0),
                reader.IsDBNull(1) ? null : reader.GetString(1),
                reader.GetFieldValue<DateOnly>(2),
                reader.GetInt32(3),
                new RateGateController(
                    reader.IsDBNull(4) ? null : reader.GetDouble(4),
                    reader.IsDBNull(5) ? null : reader.GetString(5),
                    reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6),
                    reader.IsDBNull(7) ? null : reader.GetDouble(7),
                    reader.IsDBNull(8) ? null : reader.GetInt32(8),
                    reader.IsDBNull(9) ? null : reader.GetFieldValue<DateTimeOffset>(9),
                    reader.IsDBNull(10) ? null : reader.GetString(10),
                    reader.IsDBNull(11) ? null : reader.GetInt32(11)));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var unpublished = reader.GetInt64(0);
        var oldestUnpublished = reader.IsDBNull(1) ? (DateTimeOffset?)null : reader.GetFieldValue<DateTimeOffset>(1);

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var expiredLeases = reader.GetInt64(0);

        return new StatusReport(now, groups, outcomes, calls, gate, unpublished, oldestUnpublished, expiredLeases, dailyCallLimit);
    }

    /// <summary>Writes the report as plain-text tables (no colours, no ANSI codes), owner emails masked.</summary>
    /// <param name="output">Where to write (the terminal, or a <see cref="StringWriter"/> in tests).</param>
    /// <param name="width">Line width in characters (default 140).</param>
    public void Render(TextWriter output, int width = 140)
    {
        ArgumentNullException.ThrowIfNull(output);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = width;

        console.Write(new Text($"Worker status at {Format(Now)}" + Environment.NewLine));

        var backlog = new Table().Title("Backlog per group (Pending / InFlight)")
            .AddColumns("flow", "owner", "pending", "in flight", "oldest pending");
        foreach (var group in Groups.Take(MaxGroupsShown))
        {
            AddRow(backlog, group.FlowId, EmailMask.Mask(group.OwnerEmail), Count(group.Pending), Count(group.InFlight),
                group.OldestPending is { } oldest ? Age(Now - oldest) : "-");
        }

        if (Groups.Count > MaxGroupsShown)
        {
            var rest = Groups.Skip(MaxGroupsShown).ToList();
            AddRow(backlog, $"(+{rest.Count} more groups)", string.Empty, Count(rest.Sum(g => g.Pending)), Count(rest.Sum(g => g.InFlight)), string.Empty);
        }

        var oldestOverall = Groups.Where(g => g.OldestPending is not null).Select(g => g.OldestPending!.Value).DefaultIfEmpty().Min();
        AddRow(backlog, "total", $"{Groups.Count} groups", Count(Groups.Sum(g => g.Pending)), Count(Groups.Sum(g => g.InFlight)),
            Groups.Any(g => g.OldestPending is not null) ? Age(Now - oldestOverall) : "-");
        console.Write(backlog);
        PriorityLaneReport.Render(console, Lanes, Now);

        var outcomes = new Table().Title("Outcomes in the last hour").AddColumns("status", "error code", "prospects");
        foreach (var outcome in Outcomes)
        {
            AddRow(outcomes, outcome.Status, outcome.ErrorCode.Length == 0 ? "-" : outcome.ErrorCode, Count(outcome.Count));
        }

        AddRow(outcomes, "total", string.Empty, Count(Outcomes.Sum(o => o.Count)));
        console.Write(outcomes);

        var gong = new Table().Title("Gong calls and rate gate").AddColumns("figure", "value");
        AddRow(gong, "assign calls (last hour)", Count(Calls.AssignCalls));
        AddRow(gong, "assign calls per minute", (Calls.AssignCalls / 60.0).ToString("F1", CultureInfo.InvariantCulture));
        AddRow(gong, "mean batch fill (prospects per assign)", Calls.MeanFill.ToString("F1", CultureInfo.InvariantCulture));
        AddRow(gong, "lookup calls (last hour)", Count(Calls.LookupCalls));
        AddRow(gong, "429 answers (last hour)", Count(Calls.Throttled));
        AddRow(gong, "calls not answered 200 (last hour)", Count(Calls.NotAnswered));
        if (Gate is { } gate)
        {
            var today = DateOnly.FromDateTime(Now.UtcDateTime);
            var callsToday = gate.Day == today ? gate.DayCallCount : 0;
            AddRow(gong, "rate gate", GateText(gate, callsToday));
            AddRow(gong, "calls today (UTC day)", $"{Count(callsToday)} of {Count(DailyCallLimit)}");
            if (gate.Controller is { } c)
            {
                AddRow(gong, "allowed rate", c.AllowedRate is { } rate
                    ? $"{rate.ToString("F2", CultureInfo.InvariantCulture)} calls/s ({c.RateReason ?? Gong.PostgresRateGate.RateThrottled}{(c.RateChangedAt is { } changed ? " since " + Format(changed) : string.Empty)})"
                    : "Gong:RequestsPerSecond (configured)");
                AddRow(gong, "window margin (latest call)", c.MarginSeconds is { } margin
                    ? (margin * 1000).ToString("F0", CultureInfo.InvariantCulture) + " ms"
                    : "-");
                AddRow(gong, "learned batch limit", c.LearnedBatchLimit is { } limit
                    ? $"{Count(limit)} (since {(c.BatchLimitLearnedAt is { } at ? Format(at) : "?")}, MaxBatchSize {c.BatchLimitMaxBatchSize})"
                    : "none (Gong:MaxBatchSize applies)");
                if (c.LearnedBatchLimit is not null)
                {
                    AddRow(gong, "learned from", c.BatchLimitReason ?? "-");
                }
            }
        }
        else
        {
            AddRow(gong, "rate gate", "row missing: run `migrate`");
        }

        AddRow(gong, "outbox unpublished", OutboxUnpublished == 0
            ? "0"
            : $"{Count(OutboxUnpublished)} (oldest {Age(Now - OldestUnpublished!.Value)})");
        AddRow(gong, "batches past their lease", Count(ExpiredLeases));
        console.Write(gong);
    }

    /// <summary>
    /// <c>open</c>, or every reason the gate is closed: a spent daily budget ("closed until 00:00 UTC: daily call limit
    /// 10,000 reached") and a 429 block with its stored reason.
    /// </summary>
    private string GateText(RateGateState gate, long callsToday)
    {
        var closed = new List<string>();
        if (callsToday >= DailyCallLimit)
        {
            var midnight = new DateTimeOffset(Now.UtcDateTime.Date.AddDays(1), TimeSpan.Zero);
            closed.Add($"closed until {Format(midnight)} ({Age(midnight - Now)} left): daily call limit {Count(DailyCallLimit)} reached");
        }

        if (gate.BlockedUntil is { } until && until > Now)
        {
            closed.Add($"blocked until {Format(until)} ({Age(until - Now)} left){(gate.BlockedReason is { } reason ? ": " + reason : string.Empty)}");
        }

        return closed.Count == 0 ? "open" : string.Join("; ", closed);
    }

    private static void AddRow(Table table, params string[] cells) =>
        table.AddRow(cells.Select(cell => (IRenderable)new Text(cell)).ToArray());

    private static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Format(DateTimeOffset value) =>
        value.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    private static string Age(TimeSpan age)
    {
        if (age < TimeSpan.Zero)
        {
            age = TimeSpan.Zero;
        }

        return age.TotalSeconds < 90 ? $"{age.TotalSeconds:F0} s"
            : age.TotalMinutes < 90 ? $"{age.TotalMinutes:F0} min"
            : age.TotalHours < 48 ? $"{age.TotalHours:F1} h"
            : $"{age.TotalDays:F1} d";
    }
}

/// <summary>Backlog of one (flow, owner) group.</summary>
/// <param name="FlowId">Gong flow id.</param>
/// <param name="OwnerEmail">Owner email (lower-cased, in clear: mask before showing).</param>
/// <param name="Pending">Pending prospects.</param>
/// <param name="InFlight">InFlight prospects (claimed in a batch).</param>
/// <param name="OldestPending">Arrival of the oldest Pending prospect, or null when none is Pending.</param>
public sealed record BacklogGroup(string FlowId, string OwnerEmail, long Pending, long InFlight, DateTimeOffset? OldestPending);

/// <summary>Final outcomes of one status and error code.</summary>
/// <param name="Status">Assigned, NotAssigned, Failed or Rejected.</param>
/// <param name="ErrorCode">Gong's or the worker's error code; empty when none.</param>
/// <param name="Count">Prospects.</param>
public sealed record OutcomeCount(string Status, string ErrorCode, long Count);

/// <summary>Gong calls in a period (from <c>gong_calls</c>).</summary>
/// <param name="AssignCalls">Calls to the assign endpoint.</param>
/// <param name="MeanFill">Mean prospects per assign call (0 when none).</param>
/// <param name="LookupCalls">Calls to other endpoints (the reconciliation lookup).</param>
/// <param name="Throttled">Calls answered 429.</param>
/// <param name="NotAnswered">Calls whose outcome class is not Answered.</param>
public sealed record CallSummary(long AssignCalls, double MeanFill, long LookupCalls, long Throttled, long NotAnswered);

/// <summary>The shared rate gate row.</summary>
/// <param name="BlockedUntil">No call may start before this instant (a 429's Retry-After), or null.</param>
/// <param name="BlockedReason">Why the gate is blocked.</param>
/// <param name="Day">The day <paramref name="DayCallCount"/> counts.</param>
/// <param name="DayCallCount">Calls taken on <paramref name="Day"/>.</param>
/// <param name="Controller">The allowed rate, window margin and learned batch limit; null when not read.</param>
public sealed record RateGateState(DateTimeOffset? BlockedUntil, string? BlockedReason, DateOnly Day, int DayCallCount, RateGateController? Controller = null);

/// <summary>What the shared gate has learned about Gong's door.</summary>
/// <param name="AllowedRate">Calls per second allowed now, or null for the configured <c>Gong:RequestsPerSecond</c>.</param>
/// <param name="RateReason">configured, throttled (a 429 cut it) or climbing.</param>
/// <param name="RateChangedAt">When the allowed rate last changed.</param>
/// <param name="MarginSeconds">Window margin of the latest call (seconds).</param>
/// <param name="LearnedBatchLimit">Prospects per call Gong accepts, learned from a 400; null when none.</param>
/// <param name="BatchLimitLearnedAt">When it was learned.</param>
/// <param name="BatchLimitReason">Gong's message or the bisection that proved it.</param>
/// <param name="BatchLimitMaxBatchSize">The configured MaxBatchSize it was learned under (another one forgets it).</param>
public sealed record RateGateController(
    double? AllowedRate,
    string? RateReason,
    DateTimeOffset? RateChangedAt,
    double? MarginSeconds,
    int? LearnedBatchLimit,
    DateTimeOffset? BatchLimitLearnedAt,
    string? BatchLimitReason,
    int? BatchLimitMaxBatchSize);
