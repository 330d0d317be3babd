using System.CommandLine;
using Worker.Host.Operations;

namespace Worker.Host;

/// <summary>
/// The command line: <c>run</c> (default: ingest, dispatch and relay), <c>migrate</c> (apply EF Core
/// migrations and declare the broker topology, for an init container or Job), <c>status</c> (backlog and outcome
/// summary), <c>gate</c> (show the shared rate gate's block; <c>gate open --reason …</c> lifts it, recorded) and the
/// subcommands each defined in a file of its own (<c>topology</c>, <c>healthcheck</c>, <c>redrive</c>).
/// Tokens the parser does not know (e.g. <c>--Gong:BaseUrl=http://127.0.0.1:5080</c>) are passed to the
/// host's configuration.
/// </summary>
public static class WorkerCommands
{
    /// <summary>Builds the root command with its subcommands.</summary>
    public static RootCommand Create()
    {
        var root = new RootCommand("Gong Engage flow assignment worker: RabbitMQ requests -> coalesced Gong calls -> results in Postgres and result events.");
        var run = new Command("run", "Run the worker (default): ingest, dispatch and relay.") { TreatUnmatchedTokensAsErrors = false };
        run.SetAction((parse, ct) => Guarded(parse, args => RunAsync(args, ct)));
        var migrate = new Command("migrate", "Apply database migrations, declare the broker topology and exit.") { TreatUnmatchedTokensAsErrors = false };
        migrate.SetAction((parse, ct) => Guarded(parse, args => DatabaseMigrator.MigrateAsync(args, ct)));
        var status = new Command("status", "Print backlog, outcomes of the last hour, Gong call rate and rate-gate state from the database.") { TreatUnmatchedTokensAsErrors = false };
        status.SetAction((parse, ct) => Guarded(parse, args => StatusCommand.RunAsync(args, Console.Out, Console.Error, ct)));
        var gate = new Command("gate", "Show the shared rate gate's block (a 429's Retry-After, the daily budget) and the last lifts by hand.") { TreatUnmatchedTokensAsErrors = false };
        gate.SetAction((parse, ct) => Guarded(parse, args => GateCommand.ShowAsync(args, Console.Out, Console.Error, ct)));
        var reason = new Option<string>("--reason") { Description = "Why the block is lifted (required; recorded with who and when).", Required = true };
        var by = new Option<string>("--by") { Description = "Who lifts it (default: the operating-system user and host)." };
        var open = new Command("open", "Lift the rate gate's block for every replica now and record who, when and why.") { TreatUnmatchedTokensAsErrors = false };
        open.Options.Add(reason);
        open.Options.Add(by);
        open.SetAction((parse, ct) => Guarded(parse, args => GateCommand.OpenAsync(args, parse.GetValue(reason), parse.GetValue(by), Console.Out, Console.Error, ct)));
        gate.Subcommands.Add(open);
        root.Subcommands.Add(run);
        root.Subcommands.Add(migrate);
        root.Subcommands.Add(status);
        root.Subcommands.Add(gate);
        root.Subcommands.Add(Messaging.TopologyCommand.Create());
        root.Subcommands.Add(HealthCheckCommand.Create());
        root.Subcommands.Add(Operations.Redrive.RedriveCommand.Create());
        root.TreatUnmatchedTokensAsErrors = false;
        root.SetAction((parse, ct) => Guarded(parse, args => RunAsync(args, ct)));
        return root;
    }

    /// <summary>Exit code for arguments the command line cannot parse (a missing required option, a value of the wrong type, an unknown code).</summary>
    public const int BadArgumentsExitCode = 2;

    /// <summary>
    /// Parses <paramref name="args"/> and runs the chosen subcommand. Parse errors of any subcommand (System.CommandLine's
    /// <see cref="ParseResult.Errors"/>, including option validators) are printed to standard error, one line each, and end
    /// the process with <see cref="BadArgumentsExitCode"/> (2) as the README documents; System.CommandLine itself would exit 1.
    /// </summary>
    /// <param name="args">The process arguments.</param>
    /// <returns>The process exit code.</returns>
    public static async Task<int> InvokeAsync(string[] args)
    {
        var parse = Create().Parse(args);
        if (parse.Errors.Count == 0)
        {
            return await parse.InvokeAsync().ConfigureAwait(false);
        }

        foreach (var error in parse.Errors)
        {
            await Console.Error.WriteLineAsync(error.Message).ConfigureAwait(false);
        }

        var path = new List<string>();
        for (var result = parse.CommandResult; result is not null && result != parse.RootCommandResult; result = result.Parent as System.CommandLine.Parsing.CommandResult)
        {
            path.Insert(0, result.Command.Name);
        }

        path.Add("--help");
        await Console.Error.WriteLineAsync($"Usage: {string.Join(' ', path)}").ConfigureAwait(false);
        return BadArgumentsExitCode;
    }

    /// <summary>
    /// Returns the first token that is neither a configuration argument (<c>--Key=value</c>, <c>--Key value</c>,
    /// <c>/Key=value</c>, <c>Key=value</c>) nor the value of the switch before it, or null when all are.
    /// A bare word such as a mistyped subcommand (<c>statsu</c>) is such a token: it must not start a worker.
    /// </summary>
    /// <param name="tokens">The tokens System.CommandLine did not match.</param>
    public static string? FindStrayToken(IReadOnlyList<string> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var expectingValue = false;
        foreach (var token in tokens)
        {
            var isSwitch = token.StartsWith('-') || token.StartsWith('/');
            if (isSwitch)
            {
                expectingValue = !token.Contains('=', StringComparison.Ordinal);
                continue;
            }

            if (!expectingValue && !token.Contains('=', StringComparison.Ordinal))
            {
                return token;
            }

            expectingValue = false;
        }

        return null;
    }

    /// <summary>
    /// Runs <paramref name="action"/> with the unmatched tokens as configuration arguments: exit code 2 for a stray word,
    /// 1 with the messages for invalid settings. Every subcommand's action goes through it.
    /// </summary>
    internal static Task<int> Guarded(ParseResult parse, Func<string[], Task<int>> action)
    {
        var tokens = parse.UnmatchedTokens.ToArray();
        var stray = FindStrayToken(tokens);
        if (stray is null)
        {
            return WithConfigurationErrorsAsync(action, tokens);
        }

        var commands = string.Join(", ", parse.RootCommandResult.Command.Subcommands.Select(c => c.Name == "run" ? "run (default)" : c.Name));
        Console.Error.WriteLine($"Unknown command or argument '{stray}'. Commands: {commands}; settings as --Section:Key=value (see --help).");
        return Task.FromResult(2);
    }

    /// <summary>Invalid settings end the process with exit code 1 and the validation messages (which name each setting), not a stack trace.</summary>
    private static async Task<int> WithConfigurationErrorsAsync(Func<string[], Task<int>> action, string[] tokens)
    {
        try
        {
            return await action(tokens).ConfigureAwait(false);
        }
        catch (Microsoft.Extensions.Options.OptionsValidationException ex)
        {
            await Console.Error.WriteLineAsync("Invalid configuration:").ConfigureAwait(false);
            foreach (var failure in ex.Failures)
            {
                await Console.Error.WriteLineAsync("  " + failure).ConfigureAwait(false);
            }

            return 1;
        }
        catch (Exception ex) when (UnconvertibleSetting(ex) is { } conversion)
        {
            // e.g. "Failed to convert configuration value 'abc' at 'Ingest:OutagePause' to type 'System.TimeSpan'."
            await Console.Error.WriteLineAsync("Invalid configuration: " + conversion.Message).ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>
    /// The exception of the configuration binder for a value it cannot convert (it names the key, the value and the type),
    /// found in <paramref name="exception"/> or its inner exceptions; null when there is none.
    /// </summary>
    internal static InvalidOperationException? UnconvertibleSetting(Exception? exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is InvalidOperationException conversion && conversion.TargetSite?.DeclaringType == typeof(Microsoft.Extensions.Configuration.ConfigurationBinder))
            {
                return conversion;
            }

            if (current is AggregateException aggregate && aggregate.InnerExceptions.Count == 1)
            {
                return UnconvertibleSetting(aggregate.InnerExceptions[0]);
            }
        }

        return null;
    }

    private static async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var app = WorkerHost.CreateBuilder(args).Build();
        WorkerHost.MapEndpoints(app);
        await app.RunAsync(cancellationToken).ConfigureAwait(false);
        return 0;
    }
}
