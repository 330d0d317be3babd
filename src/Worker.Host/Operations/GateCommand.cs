using System.Globalization;
using Microsoft.Extensions.Configuration;
using Npgsql;
using Worker.Host.Gong;
using Worker.Host.Persistence;

namespace Worker.Host.Operations;

/// <summary>
/// The <c>gate</c> subcommand: shows the shared rate gate's block (<c>gate</c>) and lifts it for every replica
/// (<c>gate open --reason "…" [--by "…"]</c>), recording who, when and why in <c>rate_gate_openings</c>. Prospects never
/// carry the block as their own <c>available_at</c>, so nothing else needs changing: each replica resumes at its next
/// dispatch turn (within <c>Dispatch:PollInterval</c>).
/// </summary>
public static class GateCommand
{
    /// <summary>Prints the gate's state and the last lifts; returns the exit code (0, or 1 when the database cannot be read).</summary>
    /// <param name="args">Configuration arguments (<c>ConnectionStrings:Postgres</c>, <c>Gong:DailyCallLimit</c>).</param>
    /// <param name="output">Standard output.</param>
    /// <param name="error">Standard error.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public static Task<int> ShowAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken) =>
        WithGateAsync(args, error, async (gate, dataSource, now) =>
        {
            await WriteStateAsync(gate, now, output, cancellationToken).ConfigureAwait(false);
            await using var command = dataSource.CreateCommand(
                "SELECT opened_at, opened_by, reason, blocked_until FROM rate_gate_openings ORDER BY opened_at DESC LIMIT 5");
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            var first = true;
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (first)
                {
                    await output.WriteLineAsync("Last lifted by hand:").ConfigureAwait(false);
                    first = false;
                }

                var lifted = reader.IsDBNull(3) ? "no block" : "block until " + reader.GetFieldValue<DateTimeOffset>(3).ToString("u", CultureInfo.InvariantCulture);
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"  {reader.GetFieldValue<DateTimeOffset>(0):u} by {reader.GetString(1)}: {reader.GetString(2)} (lifted {lifted})")).ConfigureAwait(false);
            }
        }, cancellationToken);

    /// <summary>Lifts the block and records it; returns the exit code (0, 1 when the database cannot be written, 2 for an
    /// empty reason).</summary>
    /// <param name="args">Configuration arguments.</param>
    /// <param name="reason">Why (required, 1–1,000 characters).</param>
    /// <param name="by">Who; default the operating-system user and host (cut to 256 characters).</param>
    /// <param name="output">Standard output.</param>
    /// <param name="error">Standard error.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    public static async Task<int> OpenAsync(string[] args, string? reason, string? by, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        reason = reason?.Trim();
        if (string.IsNullOrEmpty(reason) || reason.Length > 1000)
        {
            await error.WriteLineAsync("gate open needs --reason \"why\" (1-1000 characters); it is recorded with who and when.").ConfigureAwait(false);
            return 2;
        }

        by = string.IsNullOrWhiteSpace(by) ? $"{Environment.UserName}@{Environment.MachineName}" : by.Trim();
        by = by.Length > 256 ? by[..(char.IsHighSurrogate(by[255]) ? 255 : 256)] : by;
        return await WithGateAsync(args, error, async (gate, _, now) =>
        {
            var lifted = await gate.OpenAsync(by, reason, cancellationToken).ConfigureAwait(false);
            await output.WriteLineAsync(lifted is null
                ? $"The rate gate had no 429 block; the opening by {by} is recorded."
                : string.Create(CultureInfo.InvariantCulture, $"Lifted the block until {lifted.Until:u} ({lifted.Reason}); recorded as opened by {by} at {now:u}: {reason}")).ConfigureAwait(false);
            await WriteStateAsync(gate, now, output, cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    private static async Task WriteStateAsync(RateGateBlockReader gate, DateTimeOffset now, TextWriter output, CancellationToken cancellationToken)
    {
        var block = await gate.ReadAsync(cancellationToken).ConfigureAwait(false);
        await output.WriteLineAsync(block is null
            ? "Rate gate: open (every replica may call Gong)."
            : string.Create(CultureInfo.InvariantCulture,
                $"Rate gate: blocked until {block.Until:u} ({Left(block.Until - now)} left): {block.Reason}")).ConfigureAwait(false);
    }

    private static string Left(TimeSpan left) => left.TotalHours >= 1
        ? string.Create(CultureInfo.InvariantCulture, $"{(int)left.TotalHours} h {left.Minutes} min")
        : string.Create(CultureInfo.InvariantCulture, $"{(int)left.TotalMinutes} min {left.Seconds} s");

    private static async Task<int> WithGateAsync(string[] args, TextWriter error, Func<RateGateBlockReader, NpgsqlDataSource, DateTimeOffset, Task> action, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(error);
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = WorkerHost.ContentRoot });
        builder.Logging.ClearProviders();
        builder.AddWorkerPersistence();
        using var host = builder.Build();
        var dailyCallLimit = builder.Configuration.GetValue(StatusCommand.DailyCallLimitKey, StatusCommand.DefaultDailyCallLimit);
        var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();
        var time = host.Services.GetService<TimeProvider>() ?? TimeProvider.System;
        try
        {
            await action(new RateGateBlockReader(dataSource, dailyCallLimit, time), dataSource, time.GetUtcNow()).ConfigureAwait(false);
            return 0;
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
        {
            await error.WriteLineAsync($"Cannot use the rate gate in the worker database (ConnectionStrings:Postgres): {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }
}
