using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Worker.Host.Operations;

/// <summary>Writes a <see cref="StatusReport"/> as the plain-text tables the <c>status</c> subcommand prints.</summary>
public static class StatusReportRenderer
{
    /// <summary>Groups shown in the table; the rest are summed in one line.</summary>
    public const int MaxGroupsShown = 25;

    /// <summary>Writes the report as plain-text tables (no colours, no ANSI codes), owner emails masked.</summary>
    /// <param name="report">The report to write.</param>
    /// <param name="output">Where to write (the terminal, or a <see cref="StringWriter"/> in tests).</param>
    /// <param name="width">Line width in characters (default 140).</param>
    public static void Render(this StatusReport report, TextWriter output, int width = 140)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(output);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = width;

        console.Write(new Text($"Worker status at {Format(report.Now)}" + Environment.NewLine));

        var backlog = new Table().Title("Backlog per group (Pending / InFlight)")
            .AddColumns("flow", "owner", "pending", "in flight", "oldest pending");
        foreach (var group in report.Groups.Take(MaxGroupsShown))
        {
            AddRow(backlog, group.FlowId, EmailMask.Mask(group.OwnerEmail), Count(group.Pending), Count(group.InFlight),
                group.OldestPending is { } oldest ? Age(report.Now - oldest) : "-");
        }

        if (report.Groups.Count > MaxGroupsShown)
        {
            var rest = report.Groups.Skip(MaxGroupsShown).ToList();
            AddRow(backlog, $"(+{rest.Count} more groups)", string.Empty, Count(rest.Sum(g => g.Pending)), Count(rest.Sum(g => g.InFlight)), string.Empty);
        }

        var oldestOverall = report.Groups.Where(g => g.OldestPending is not null).Select(g => g.OldestPending!.Value).DefaultIfEmpty().Min();
        AddRow(backlog, "total", $"{report.Groups.Count} groups", Count(report.Groups.Sum(g => g.Pending)), Count(report.Groups.Sum(g => g.InFlight)),
            report.Groups.Any(g => g.OldestPending is not null) ? Age(report.Now - oldestOverall) : "-");
        console.Write(backlog);
        PriorityLaneReport.Render(console, report.Lanes, report.Now);

        var outcomes = new Table().Title("Outcomes in the last hour").AddColumns("status", "error code", "prospects");
        foreach (var outcome in report.Outcomes)
        {
            AddRow(outcomes, outcome.Status, outcome.ErrorCode.Length == 0 ? "-" : outcome.ErrorCode, Count(outcome.Count));
        }

        AddRow(outcomes, "total", string.Empty, Count(report.Outcomes.Sum(o => o.Count)));
        console.Write(outcomes);

        var gong = new Table().Title("Gong calls and rate gate").AddColumns("figure", "value");
        AddRow(gong, "assign calls (last hour)", Count(report.Calls.AssignCalls));
        AddRow(gong, "assign calls per minute", (report.Calls.AssignCalls / 60.0).ToString("F1", CultureInfo.InvariantCulture));
        AddRow(gong, "mean batch fill (prospects per assign)", report.Calls.MeanFill.ToString("F1", CultureInfo.InvariantCulture));
        AddRow(gong, "lookup calls (last hour)", Count(report.Calls.LookupCalls));
        AddRow(gong, "429 answers (last hour)", Count(report.Calls.Throttled));
        AddRow(gong, "calls not answered 200 (last hour)", Count(report.Calls.NotAnswered));
        if (report.Gate is { } gate)
        {
            var today = DateOnly.FromDateTime(report.Now.UtcDateTime);
            var callsToday = gate.Day == today ? gate.DayCallCount : 0;
            AddRow(gong, "rate gate", GateText(report, gate, callsToday));
            AddRow(gong, "calls today (UTC day)", $"{Count(callsToday)} of {Count(report.DailyCallLimit)}");
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

        AddRow(gong, "outbox unpublished", report.OutboxUnpublished == 0
            ? "0"
            : $"{Count(report.OutboxUnpublished)} (oldest {Age(report.Now - report.OldestUnpublished!.Value)})");
        AddRow(gong, "batches past their lease", Count(report.ExpiredLeases));
        console.Write(gong);
    }

    /// <summary>
    /// <c>open</c>, or every reason the gate is closed: a spent daily budget ("closed until 00:00 UTC: daily call limit
    /// 10,000 reached") and a 429 block with its stored reason.
    /// </summary>
    private static string GateText(StatusReport report, RateGateState gate, long callsToday)
    {
        var closed = new List<string>();
        if (callsToday >= report.DailyCallLimit)
        {
            var midnight = new DateTimeOffset(report.Now.UtcDateTime.Date.AddDays(1), TimeSpan.Zero);
            closed.Add($"closed until {Format(midnight)} ({Age(midnight - report.Now)} left): daily call limit {Count(report.DailyCallLimit)} reached");
        }

        if (gate.BlockedUntil is { } until && until > report.Now)
        {
            closed.Add($"blocked until {Format(until)} ({Age(until - report.Now)} left){(gate.BlockedReason is { } reason ? ": " + reason : string.Empty)}");
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
