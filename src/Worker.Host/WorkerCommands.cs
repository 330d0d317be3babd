using System.CommandLine;
using Worker.Host.Operations;

namespace Worker.Host;

/// <summary>
/// The command line: <c>run</c> (default: ingest, dispatch and relay), <c>migrate</c> (apply EF Core
/// migrations, for an init container or Job) and <c>status</c> (backlog and outcome summary).
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
        run.SetAction((parse, ct) => RunAsync(parse.UnmatchedTokens.ToArray(), ct));
        var migrate = new Command("migrate", "Apply database migrations and exit.") { TreatUnmatchedTokensAsErrors = false };
        migrate.SetAction((parse, ct) => DatabaseMigrator.MigrateAsync(parse.UnmatchedTokens.ToArray(), ct));
        var status = new Command("status", "Print backlog, outcomes of the last hour, Gong call rate and rate-gate state from the database.") { TreatUnmatchedTokensAsErrors = false };
        status.SetAction((parse, ct) => StatusCommand.RunAsync(parse.UnmatchedTokens.ToArray(), Console.Out, Console.Error, ct));
        root.Subcommands.Add(run);
        root.Subcommands.Add(migrate);
        root.Subcommands.Add(status);
        root.TreatUnmatchedTokensAsErrors = false;
        root.SetAction((parse, ct) => RunAsync(parse.UnmatchedTokens.ToArray(), ct));
        return root;
    }

    private static async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var app = WorkerHost.CreateBuilder(args).Build();
        WorkerHost.MapEndpoints(app);
        await app.RunAsync(cancellationToken).ConfigureAwait(false);
        return 0;
    }
}
