using System.CommandLine;
using System.Globalization;
using Npgsql;
using Worker.Host.Ingest;
using Worker.Host.Persistence;

namespace Worker.Host.Operations.Redrive;

/// <summary>
/// The <c>redrive</c> subcommand: prints what a selection finds (request, flow, status, error code, count), then, unless
/// <c>--dry-run</c>, re-queues those prospects as new requests (<see cref="Redriver"/>). Exit code 0 on success (also when
/// nothing matched), 1 when the database cannot be used, 2 for invalid arguments.
/// </summary>
public static class RedriveCommand
{
    /// <summary>The values <c>--error-code</c> accepts: the worker's error codes of Failed prospects (docs/DESIGN.md, "Per-prospect status"), case-sensitive.</summary>
    public static IReadOnlyList<string> FailedErrorCodes { get; } = [.. WorkerMetrics.FailedErrorCodes.Where(c => c != OutcomeErrorCodes.Other)];

    /// <summary>Builds the command with its selection options.</summary>
    public static Command Create()
    {
        var requestId = new Option<string?>("--request-id") { Description = "Only prospects of this request (the publisher's requestId)." };
        var flowId = new Option<string?>("--flow-id") { Description = "Only prospects for this Gong flow id." };
        var errorCodes = new Option<string[]>("--error-code")
        {
            Description = "Only Failed prospects with this worker error code (repeatable, e.g. RetriesExhausted). Default: every Failed prospect.",
            AllowMultipleArgumentsPerToken = false,
        };
        errorCodes.Validators.Add(result =>
        {
            foreach (var code in result.GetValueOrDefault<string[]>() ?? [])
            {
                if (!FailedErrorCodes.Contains(code, StringComparer.Ordinal))
                {
                    result.AddError($"--error-code {UserText.Describe(code)} is not a worker error code of Failed prospects; allowed: {string.Join(", ", FailedErrorCodes)}.");
                }
            }
        });
        var notAssigned = new Option<string[]>("--not-assigned")
        {
            Description = "Also NotAssigned prospects with this Gong error code (repeatable, e.g. InvalidState).",
        };
        var from = new Option<DateTimeOffset?>("--from") { Description = "Only outcomes recorded at or after this time (ISO 8601; UTC unless an offset is given).", CustomParser = Time("--from") };
        var to = new Option<DateTimeOffset?>("--to") { Description = "Only outcomes recorded before this time (ISO 8601; UTC unless an offset is given).", CustomParser = Time("--to") };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the counts only; change nothing." };
        var command = new Command("redrive", "Re-queue Failed (and chosen NotAssigned) prospects as new requests (requestId redrive:<generation>:<hash>); each gets its own result event.")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        foreach (var option in new Option[] { requestId, flowId, errorCodes, notAssigned, from, to, dryRun })
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) => WorkerCommands.Guarded(parse, args =>
        {
            var selection = new RedriveSelection(
                Blank(parse.GetValue(requestId)),
                Blank(parse.GetValue(flowId)),
                parse.GetValue(errorCodes) ?? [],
                parse.GetValue(notAssigned) ?? [],
                parse.GetValue(from)?.ToUniversalTime(),
                parse.GetValue(to)?.ToUniversalTime());
            return RunAsync(args, selection, parse.GetValue(dryRun), Console.Out, Console.Error, ct);
        }));
        return command;
    }

    /// <summary>Prints the counts and, unless <paramref name="dryRun"/>, re-drives; returns the exit code.</summary>
    /// <param name="args">Configuration arguments (<c>ConnectionStrings:Postgres</c>, <c>Ingest:*</c>).</param>
    /// <param name="selection">The rows to re-drive.</param>
    /// <param name="dryRun">Count only.</param>
    /// <param name="output">Standard output.</param>
    /// <param name="error">Standard error.</param>
    /// <param name="cancellationToken">Stops the work (marked rows are stored by the next run).</param>
    public static async Task<int> RunAsync(string[] args, RedriveSelection selection, bool dryRun, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(selection);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = WorkerHost.ContentRoot });
        builder.AddWorkerLogging();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<WorkerMetrics>();
        builder.AddWorkerPersistence();
        builder.AddWorkerIngest();
        builder.Services.AddSingleton<Redriver>();
        using var host = builder.Build();
        var redriver = host.Services.GetRequiredService<Redriver>();
        try
        {
            var counts = await redriver.CountAsync(selection, cancellationToken).ConfigureAwait(false);
            await PrintCountsAsync(counts, output).ConfigureAwait(false);
            if (dryRun)
            {
                await output.WriteLineAsync("Dry run: nothing changed.").ConfigureAwait(false);
                return 0;
            }

            var stored = await redriver.RedriveAsync(selection, cancellationToken).ConfigureAwait(false);
            foreach (var request in stored)
            {
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"{request.RequestId} re-drives {request.RedriveOfRequestId}: {request.Prospects} prospect(s){(request.AlreadyStored ? " (stored by an earlier run)" : string.Empty)}")).ConfigureAwait(false);
            }

            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"Re-drive requests stored: {stored.Count}, prospects queued: {stored.Sum(r => r.Prospects)}.")).ConfigureAwait(false);
            return 0;
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
        {
            await error.WriteLineAsync($"Re-drive failed (ConnectionStrings:Postgres): {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    private static async Task PrintCountsAsync(IReadOnlyList<RedriveCount> counts, TextWriter output)
    {
        if (counts.Count == 0)
        {
            await output.WriteLineAsync("Selected: 0 prospects (none matches, or every match was re-driven before).").ConfigureAwait(false);
            return;
        }

        await output.WriteLineAsync("request\tflow\tstatus\terror code\tprospects").ConfigureAwait(false);
        foreach (var count in counts)
        {
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"{count.RequestId}\t{count.FlowId}\t{count.Status}\t{count.ErrorCode ?? "-"}\t{count.Prospects}")).ConfigureAwait(false);
        }

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"Selected: {counts.Sum(c => c.Prospects)} prospects of {counts.Select(c => c.RequestId).Distinct(StringComparer.Ordinal).Count()} request(s).")).ConfigureAwait(false);
    }

    /// <summary>Parses an ISO 8601 time (UTC unless it names an offset); anything else is a parse error naming <paramref name="option"/> (exit code 2).</summary>
    private static Func<System.CommandLine.Parsing.ArgumentResult, DateTimeOffset?> Time(string option) => result =>
    {
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Empty;
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time))
        {
            return time;
        }

        result.AddError($"{option} must be an ISO 8601 time such as 2026-11-30T08:00:00Z; got {UserText.Describe(text)}.");
        return null;
    };

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
