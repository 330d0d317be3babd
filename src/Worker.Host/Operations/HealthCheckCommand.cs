using System.CommandLine;
using System.Globalization;

namespace Worker.Host.Operations;

/// <summary>
/// The <c>healthcheck</c> subcommand, for a container runtime's health check (docker compose <c>healthcheck.test</c>): the
/// chiseled runtime image has no shell or curl. GETs the worker's readiness endpoint and exits 0 on HTTP 200, 1 otherwise
/// (503, refused connection, timeout), printing the status line or the error.
/// </summary>
public static class HealthCheckCommand
{
    /// <summary>Longest wait for the answer (5 s); compose's own <c>timeout</c> should be larger.</summary>
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Builds the command with its <c>--url</c> option.</summary>
    public static Command Create()
    {
        // A string parsed here: System.CommandLine 2.0 has no parser for System.Uri ("Cannot parse argument ... as expected type 'System.Uri'").
        var url = new Option<string?>("--url")
        {
            Description = $"Absolute http(s) URL of the endpoint to check (default: {HealthEndpoints.ReadyPath} on the port of the Urls setting, on 127.0.0.1).",
        };
        url.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } value && ParseUrl(value) is null)
            {
                result.AddError($"--url must be an absolute http or https URL, e.g. http://127.0.0.1:8080{HealthEndpoints.ReadyPath}; got {UserText.Describe(value)}.");
            }
        });
        var command = new Command("healthcheck", "Exit 0 when the running worker's readiness endpoint answers 200, else 1 (for compose health checks).")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        command.Options.Add(url);
        command.SetAction((parse, ct) => WorkerCommands.Guarded(parse, args => CheckAsync(ParseUrl(parse.GetValue(url)) ?? DefaultUrl(args), Console.Out, ct)));
        return command;
    }

    /// <summary>The absolute http(s) URL in <paramref name="value"/>, or null when it is null or not such a URL.</summary>
    /// <param name="value">The <c>--url</c> value, e.g. <c>http://127.0.0.1:8181/health/ready</c>.</param>
    public static Uri? ParseUrl(string? value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) ? uri : null;

    /// <summary>
    /// The readiness URL of the worker in this container: the port of the first <c>Urls</c> entry (configuration or
    /// environment, e.g. <c>Urls=http://+:8080</c>) on 127.0.0.1, else <see cref="HealthEndpoints.HttpPort"/>.
    /// </summary>
    /// <param name="args">Configuration arguments.</param>
    public static Uri DefaultUrl(string[] args)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = WorkerHost.ContentRoot });
        var port = HealthEndpoints.HttpPort;
        var first = builder.Configuration["Urls"]?.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        if (first is not null && Uri.TryCreate(first.Replace("://+", "://localhost", StringComparison.Ordinal).Replace("://*", "://localhost", StringComparison.Ordinal), UriKind.Absolute, out var listen))
        {
            port = listen.Port;
        }

        return new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}{HealthEndpoints.ReadyPath}");
    }

    /// <summary>GETs <paramref name="url"/>; returns 0 on 200, 1 on any other answer or failure.</summary>
    /// <param name="url">The endpoint.</param>
    /// <param name="output">Where the outcome line goes.</param>
    /// <param name="cancellationToken">Stops the request.</param>
    public static async Task<int> CheckAsync(Uri url, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(url);
        ArgumentNullException.ThrowIfNull(output);
        using var http = new HttpClient { Timeout = RequestTimeout };
        try
        {
            using var response = await http.GetAsync(url, cancellationToken).ConfigureAwait(false);
            await output.WriteLineAsync($"{url}: {(int)response.StatusCode} {response.ReasonPhrase}").ConfigureAwait(false);
            return response.StatusCode == System.Net.HttpStatusCode.OK ? 0 : 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            await output.WriteLineAsync($"{url}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }
}
