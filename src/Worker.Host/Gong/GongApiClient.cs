using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Worker.Host.Gong;

/// <summary>
/// The typed HttpClient of Gong's flow API (registered with IHttpClientFactory; base address, auth header and the
/// Polly pipeline come from <see cref="GongExtensions.AddGongClient"/>). Makes exactly one logical call per method
/// (the pipeline may repeat only an attempt that never reached Gong) and never throws for HTTP or network failures:
/// everything becomes a <see cref="GongHttpResult"/>.
/// </summary>
internal sealed class GongApiClient(HttpClient http, TimeProvider time, Microsoft.Extensions.Options.IOptions<GongOptions> options)
{
    /// <summary>A warm-up that takes longer than this is abandoned (the call then counts as on a cold connection).</summary>
    private static readonly TimeSpan WarmUpTimeout = TimeSpan.FromSeconds(10);

    private static int firstWarmUp;

    /// <summary>Assign endpoint path, relative to the base URL.</summary>
    public const string AssignPath = "v2/flows/prospects/assign";

    /// <summary>Lookup endpoint path (open flow instances of prospects), relative to the base URL.</summary>
    public const string LookupPath = "v2/flows/prospects";

    /// <summary>Body reads are bounded too: the Polly timeout ends when the headers arrive.</summary>
    private static readonly TimeSpan BodyReadTimeout = TimeSpan.FromSeconds(60);

    /// <summary><c>POST /v2/flows/prospects/assign</c> with unique <paramref name="crmProspectIds"/>.</summary>
    /// <param name="flowId">Gong flow id.</param>
    /// <param name="ownerEmail">Flow instance owner email.</param>
    /// <param name="crmProspectIds">Unique ids (at most MaxBatchSize, checked by the caller).</param>
    /// <param name="lane">The connection to use (the one its warm-up just used); null = a shared pool.</param>
    /// <param name="startNoLaterThan">Latest start the caller's rate-gate slot allows; later, nothing is sent
    /// (<see cref="GongCallKind.LateForSlot"/>).</param>
    /// <param name="cancellationToken">Shutdown.</param>
    /// <exception cref="ArgumentException">Duplicate or empty ids (a programming error upstream).</exception>
    public Task<GongHttpResult> AssignAsync(string flowId, string ownerEmail, IReadOnlyList<string> crmProspectIds, GongLane? lane, DateTimeOffset? startNoLaterThan, CancellationToken cancellationToken)
    {
        EnsureUnique(crmProspectIds);
        return PostAsync(AssignPath, JsonSerializer.Serialize(new GongAssignRequest(crmProspectIds, flowId, ownerEmail), GongJson.Options), lane, startNoLaterThan, cancellationToken);
    }

    /// <summary><c>POST /v2/flows/prospects</c>: the prospects' open flow instances.</summary>
    /// <exception cref="ArgumentException">Duplicate or empty ids.</exception>
    public Task<GongHttpResult> LookupAsync(IReadOnlyList<string> crmProspectIds, GongLane? lane, DateTimeOffset? startNoLaterThan, CancellationToken cancellationToken)
    {
        EnsureUnique(crmProspectIds);
        return PostAsync(LookupPath, JsonSerializer.Serialize(new GongLookupRequest(crmProspectIds), GongJson.Options), lane, startNoLaterThan, cancellationToken);
    }

    /// <summary>
    /// <c>HEAD</c> of <c>WarmUpPath</c> (default the base URL; the process's first warm-up is a <c>POST</c> of <c>{}</c>
    /// there) on <paramref name="lane"/>, without credentials: not an API call of the company, so Gong does not count it. It opens (or keeps) the lane's connection and runs the whole
    /// HTTP pipeline once, so the call that follows starts on a warm connection and arrives when its slot says. Any
    /// HTTP answer (404 included) is fine. Never throws for HTTP or network failures.
    /// </summary>
    /// <returns>Whether an answer came back, the round trip, and whether a new connection was opened for it.</returns>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public async Task<WarmUpResult> WarmUpAsync(GongLane lane, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lane);
        // The process's first warm-up also runs what a call runs after its slot and a HEAD does not: the serializer's
        // metadata for both bodies and the request-content path (a POST with a small JSON body, still without
        // credentials, to the same non-API path). Cold, that code can take tens of ms to compile.
        var first = Interlocked.Exchange(ref firstWarmUp, 1) == 0;
        if (first)
        {
            _ = JsonSerializer.Serialize(new GongAssignRequest(["warm-up"], "0", "warm-up@example.com"), GongJson.Options);
            _ = JsonSerializer.Serialize(new GongLookupRequest(["warm-up"]), GongJson.Options);
        }

        var connects = lane.Connects;
        var started = time.GetTimestamp();
        using var timeout = new CancellationTokenSource(WarmUpTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            using var request = new HttpRequestMessage(first ? HttpMethod.Post : HttpMethod.Head, new Uri(options.Value.WarmUpPath.TrimStart('/'), UriKind.Relative));
            if (first)
            {
                request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
            }

            request.Options.Set(GongConnectionLanes.LaneKey, lane);
            request.Options.Set(GongConnectionLanes.WarmUpKey, true);
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseContentRead, linked.Token).ConfigureAwait(false);
            return new WarmUpResult(true, time.GetElapsedTime(started), lane.Connects != connects);
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or BrokenCircuitException or IOException or SocketException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return new WarmUpResult(false, time.GetElapsedTime(started), lane.Connects != connects);
        }
    }

    private static void EnsureUnique(IReadOnlyList<string> ids)
    {
        if (ids.Count == 0 || ids.Distinct(StringComparer.Ordinal).Count() != ids.Count)
        {
            throw new ArgumentException("A Gong call needs at least one id and never a duplicate id.", nameof(ids));
        }
    }

    private async Task<GongHttpResult> PostAsync(string path, string json, GongLane? lane, DateTimeOffset? startNoLaterThan, CancellationToken cancellationToken)
    {
        var startedAt = time.GetUtcNow();
        var started = time.GetTimestamp();
        if (startedAt > startNoLaterThan)
        {
            return new GongHttpResult(GongCallKind.LateForSlot, null, null, null, "late for the rate-gate slot", null, startedAt, TimeSpan.Zero);
        }

        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative))
            {
                Content = new StringContent(json, Encoding.UTF8, "application/json"),
            };
            if (lane is not null)
            {
                request.Options.Set(GongConnectionLanes.LaneKey, lane);
            }

            if (startNoLaterThan is { } deadline)
            {
                request.Options.Set(GongConnectionLanes.SendNoLaterThanKey, deadline);
            }

            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            string body;
            using (var bodyTimeout = new CancellationTokenSource(BodyReadTimeout, time))
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, bodyTimeout.Token))
            {
                body = await response.Content.ReadAsStringAsync(linked.Token).ConfigureAwait(false);
            }

            var kind = GongCallClassifier.FromStatus(status);
            GongProspectsResponse? answer = null;
            string? requestId;
            string? error = null;
            if (kind == GongCallKind.Answered)
            {
                answer = GongJson.ParseProspects(body);
                requestId = answer?.RequestId;
                if (answer is null)
                {
                    // Gong said 200 but we cannot read what it did: treat as unknown and reconcile.
                    kind = GongCallKind.OutcomeUnknown;
                    error = "200 with an unreadable body";
                }
            }
            else
            {
                var parsed = GongJson.ParseError(body);
                requestId = parsed?.RequestId;
                error = parsed?.Message() ?? $"HTTP {status} {response.ReasonPhrase}".Trim();
            }

            var retryAfter = status == 429 ? RetryAfter.Until(response.Headers, time.GetUtcNow()) : null;
            return new GongHttpResult(kind, status, requestId, answer, error, retryAfter, startedAt, time.GetElapsedTime(started));
        }
        catch (GongLateForSlotException late)
        {
            return new GongHttpResult(GongCallKind.LateForSlot, null, null, null, late.Message, null, startedAt, TimeSpan.Zero);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return new GongHttpResult(GongCallKind.Cancelled, null, null, null, "cancelled (shutdown)", null, startedAt, time.GetElapsedTime(started));
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or BrokenCircuitException or OperationCanceledException or IOException or SocketException)
        {
            var kind = GongCallClassifier.IsNotSent(ex) ? GongCallKind.NotSent : GongCallKind.OutcomeUnknown;
            return new GongHttpResult(kind, null, null, null, Describe(ex), null, startedAt, time.GetElapsedTime(started));
        }
    }

    private static string Describe(Exception ex) => ex switch
    {
        TimeoutRejectedException => "attempt timeout",
        BrokenCircuitException => "circuit open",
        HttpRequestException h => $"{nameof(HttpRequestException)} ({h.HttpRequestError}): {h.Message}",
        _ => $"{ex.GetType().Name}: {ex.Message}",
    };
}

/// <summary>The result of a warm-up request.</summary>
/// <param name="Answered">Whether any HTTP answer came back.</param>
/// <param name="RoundTrip">Wall time of the request.</param>
/// <param name="NewConnection">Whether the lane opened a new connection for it.</param>
internal sealed record WarmUpResult(bool Answered, TimeSpan RoundTrip, bool NewConnection);

/// <summary>The result of one HTTP call to Gong.</summary>
/// <param name="Kind">Classification.</param>
/// <param name="HttpStatus">HTTP status, or null when no response arrived.</param>
/// <param name="GongRequestId">Gong's requestId from the body, when present.</param>
/// <param name="Answer">For <see cref="GongCallKind.Answered"/>: the parsed body.</param>
/// <param name="Error">Gong's error messages or the failure, never a secret.</param>
/// <param name="RetryAfterUntil">For a 429 with a readable Retry-After: the instant it names.</param>
/// <param name="StartedAt">When the call started (UTC).</param>
/// <param name="Duration">Wall time of the call.</param>
internal sealed record GongHttpResult(
    GongCallKind Kind,
    int? HttpStatus,
    string? GongRequestId,
    GongProspectsResponse? Answer,
    string? Error,
    DateTimeOffset? RetryAfterUntil,
    DateTimeOffset StartedAt,
    TimeSpan Duration);
