using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Connections.Features;

namespace Gong.Simulator;

/// <summary>
/// Gong's assign and lookup endpoints. Order of checks per call: auth (and 401 periods), scripted 401/429,
/// rate limit, body (and scripted 400), batch limit, 400 ids, 403/404 flow, latency, fault before commit (scripted,
/// else random; a slow commit works here, past a client that left), commit, fault after commit. A scripted fault is consumed only by a call that reaches its stage.
/// </summary>
internal static class GongEndpoints
{
    private const string SeenConnectionKey = "gong-simulator.connection-seen";

    /// <summary>HttpContext item: when the request came through the simulated network to Gong's door (the instant the
    /// rate limit counts).</summary>
    private const string ArrivedKey = "gong-simulator.arrived";

    /// <summary>
    /// The network between client and Gong: holds each request (except <c>/_sim</c> and <c>/health</c>) for
    /// <see cref="FaultOptions.ArrivalJitterMs"/> jitter plus, on the first such request of a TCP connection,
    /// <see cref="FaultOptions.NewConnectionDelayMs"/>, so it arrives (and is counted) that much later.
    /// </summary>
    public static IApplicationBuilder UseSimulatedNetwork(this IApplicationBuilder app) => app.Use(async (http, next) =>
    {
        var path = http.Request.Path;
        if (!path.StartsWithSegments("/_sim") && !path.StartsWithSegments("/health"))
        {
            var state = http.RequestServices.GetRequiredService<SimulatorState>();
            var items = http.Features.Get<IConnectionItemsFeature>()?.Items;
            var newConnection = items is not null && items.TryAdd(SeenConnectionKey, true);
            var delay = state.PickArrivalDelay(newConnection);
            if (delay > TimeSpan.Zero)
            {
                await state.DelayAsync(delay, http.RequestAborted).ConfigureAwait(false);
            }

            http.Items[ArrivedKey] = state.Time.GetUtcNow();
        }

        await next(http).ConfigureAwait(false);
    });

    public static IEndpointRouteBuilder MapGongEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost(SimulatorEndpoints.AssignPath, (HttpContext http, SimulatorState state) => HandleAsync(http, state, SimulatorEndpoints.Assign));
        app.MapPost(SimulatorEndpoints.LookupPath, (HttpContext http, SimulatorState state) => HandleAsync(http, state, SimulatorEndpoints.Lookup));
        return app;
    }

    private static async Task HandleAsync(HttpContext http, SimulatorState state, string endpoint)
    {
        var time = state.Time;
        // Counted at the door: the endpoint's first run and reading the body are Gong's time, not the network's.
        var arrived = http.Items.TryGetValue(ArrivedKey, out var door) && door is DateTimeOffset at ? at : time.GetUtcNow();
        var started = time.GetTimestamp();
        var requestId = state.NewRequestId();
        // A held answer (latency, timeout after commit) ends when the client leaves or the simulator stops.
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(
            http.RequestAborted,
            http.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);
        var cancel = stopping.Token;
        var isAssign = endpoint == SimulatorEndpoints.Assign;
        var (body, bodyError) = await ReadBodyAsync(http.Request, isAssign, cancel).ConfigureAwait(false);
        var ids = body?.CrmProspectsIds?.Select(i => i ?? "").ToList() ?? [];
        var call = new CallRecord(0, arrived, endpoint, body?.FlowId, body?.FlowInstanceOwnerEmail, ids.Count, ids, 0, null, null, false, requestId, 0, 0, 0, null);
        var faults = state.CurrentFaults();

        Task Fail(int status, string message, string? fault = null, bool committed = false, string? retryAfter = null, bool? selfCaused = null)
        {
            state.Record(call with
            {
                Status = status, Error = message, Fault = fault, Committed = committed, RetryAfter = retryAfter, SelfCausedRateLimited = selfCaused,
                DurationMs = time.GetElapsedTime(started).TotalMilliseconds,
            });
            http.Response.StatusCode = status;
            if (retryAfter is not null)
            {
                http.Response.Headers.RetryAfter = retryAfter;
            }

            return http.Response.WriteAsJsonAsync(new GongError(requestId, [message]), SimulatorJson.Options, cancel);
        }

        if (!IsAuthorized(http.Request, state.Options))
        {
            await Fail(401, "Unauthorized: invalid access key, secret or token").ConfigureAwait(false);
            return;
        }

        if (faults.UnauthorizedUntil is { } until && arrived < until)
        {
            await Fail(401, "Unauthorized", "Unauthorized").ConfigureAwait(false);
            return;
        }

        var scripted = state.TakeScriptedFault(endpoint, FaultKind.Unauthorized, FaultKind.RateLimited);
        switch (scripted?.Kind)
        {
            case FaultKind.Unauthorized:
                await Fail(401, "Unauthorized", nameof(FaultKind.Unauthorized)).ConfigureAwait(false);
                return;
            case FaultKind.RateLimited:
                var mode = scripted.RetryAfterMode ?? state.CurrentRetryAfterMode();
                await Fail(429, "API request limit exceeded", nameof(FaultKind.RateLimited),
                    retryAfter: scripted.RetryAfterHeader ?? RetryAfterValue(scripted.RetryAfterSeconds ?? 1, mode, arrived), selfCaused: false).ConfigureAwait(false);
                return;
        }

        if (isAssign || state.Options.LookupCountsTowardsRateLimit)
        {
            var decision = state.TryAcquireRateSlot(arrived);
            call = call with { Time = decision.At };
            if (!decision.Accepted)
            {
                await Fail(429, decision.Message!, retryAfter: RetryAfterValue(decision.RetryAfterSeconds, decision.Mode, decision.At), selfCaused: decision.SelfCaused).ConfigureAwait(false);
                return;
            }
        }

        if (bodyError is not null)
        {
            await Fail(400, bodyError).ConfigureAwait(false);
            return;
        }

        if (state.TakeScriptedFault(endpoint, FaultKind.BadRequest) is not null)
        {
            await Fail(400, "Malformed request", nameof(FaultKind.BadRequest)).ConfigureAwait(false);
            return;
        }

        FlowDefinition? flow = null;
        if (isAssign)
        {
            if (ids.Count > faults.BatchLimit)
            {
                await Fail(400, $"crmProspectsIds: at most {faults.BatchLimit} prospects can be assigned in one request, got {ids.Count}").ConfigureAwait(false);
                return;
            }

            var badId = ids.FirstOrDefault(i => faults.BadRequestIds.Contains(i)
                || (!string.IsNullOrEmpty(faults.BadRequestIdPrefix) && i.StartsWith(faults.BadRequestIdPrefix, StringComparison.Ordinal)));
            if (badId is not null)
            {
                await Fail(400, $"Malformed crmProspectsIds value: {badId}").ConfigureAwait(false);
                return;
            }

            if (faults.ForbiddenFlowIds.Contains(body!.FlowId!))
            {
                await Fail(403, $"Forbidden: no access to flow {body.FlowId} (Gong Engage licence or scope api:flows:write missing)").ConfigureAwait(false);
                return;
            }

            flow = state.ResolveFlow(body.FlowId!);
            if (flow is null)
            {
                await Fail(404, $"Flow {body.FlowId} not found").ConfigureAwait(false);
                return;
            }
        }

        var latency = state.PickLatency(faults, isAssign ? ids.Count : 0);
        if (latency > TimeSpan.Zero)
        {
            await state.DelayAsync(latency, cancel).ConfigureAwait(false);
        }

        scripted = state.TakeScriptedFault(
            endpoint,
            FaultKind.ErrorBeforeCommit,
            FaultKind.ResetBeforeCommit,
            FaultKind.ErrorAfterCommit,
            FaultKind.ResetAfterCommit,
            FaultKind.TimeoutAfterCommit,
            FaultKind.SlowCommit);
        var fault = scripted?.Kind ?? (isAssign ? state.RollRandomFault(faults) : null);
        if (fault == FaultKind.SlowCommit)
        {
            // Gong keeps working on a request its client gave up on: only the simulator's own stop ends the work.
            var stopped = http.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
            using var abandoned = http.RequestAborted.Register(state.NoteAbandoned);
            await state.DelayAsync(TimeSpan.FromMilliseconds(scripted!.CommitDelayMs ?? 10_000), stopped).ConfigureAwait(false);
        }

        var errorStatus = scripted?.Status ?? state.PickServerErrorStatus(faults);
        switch (fault)
        {
            case FaultKind.ErrorBeforeCommit:
                await Fail(errorStatus, "Failed to complete the operation due to an unexpected error", nameof(FaultKind.ErrorBeforeCommit)).ConfigureAwait(false);
                return;
            case FaultKind.ResetBeforeCommit:
                state.Record(call with { Fault = nameof(FaultKind.ResetBeforeCommit), DurationMs = time.GetElapsedTime(started).TotalMilliseconds });
                ResetConnection(http);
                return;
        }

        object answer;
        int assigned, notAssigned;
        if (isAssign)
        {
            var response = state.Assign(requestId, flow!, body!.FlowInstanceOwnerEmail!, ids);
            (answer, assigned, notAssigned) = (response, response.ProspectsAssigned.Count, response.ProspectsNotAssigned.Count);
        }
        else
        {
            var found = state.FindOpenInstances(ids);
            (answer, assigned, notAssigned) = (new GongLookupResponse(requestId, found), found.Count, 0);
        }

        call = call with { Committed = isAssign, Assigned = assigned, NotAssigned = notAssigned };
        if (isAssign && state.AfterCommit is { } afterCommit)
        {
            try
            {
                await afterCommit(call, cancel).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                state.Record(call with { Fault = "AfterCommitHook", DurationMs = time.GetElapsedTime(started).TotalMilliseconds });
                return;
            }
        }

        switch (fault)
        {
            case FaultKind.ErrorAfterCommit:
                await Fail(errorStatus, "Failed to complete the operation due to an unexpected error", nameof(FaultKind.ErrorAfterCommit), committed: isAssign).ConfigureAwait(false);
                return;
            case FaultKind.ResetAfterCommit:
                state.Record(call with { Fault = nameof(FaultKind.ResetAfterCommit), DurationMs = time.GetElapsedTime(started).TotalMilliseconds });
                ResetConnection(http);
                return;
            case FaultKind.TimeoutAfterCommit:
                state.Record(call with { Status = 200, Fault = nameof(FaultKind.TimeoutAfterCommit), DurationMs = time.GetElapsedTime(started).TotalMilliseconds });
                await state.DelayAsync(TimeSpan.FromMilliseconds(faults.TimeoutAfterCommitDelayMs), cancel).ConfigureAwait(false);
                await http.Response.WriteAsJsonAsync(answer, answer.GetType(), SimulatorJson.Options, cancel).ConfigureAwait(false);
                return;
        }

        if (fault == FaultKind.SlowCommit && cancel.IsCancellationRequested)
        {
            // Committed after the client left: nobody hears the answer (status 0, like a reset).
            state.Record(call with { Fault = nameof(FaultKind.SlowCommit), DurationMs = time.GetElapsedTime(started).TotalMilliseconds });
            return;
        }

        state.Record(call with { Status = 200, Fault = fault == FaultKind.SlowCommit ? nameof(FaultKind.SlowCommit) : null, DurationMs = time.GetElapsedTime(started).TotalMilliseconds });
        await http.Response.WriteAsJsonAsync(answer, answer.GetType(), SimulatorJson.Options, cancel).ConfigureAwait(false);
    }

    private static async Task<(GongAssignRequest? Body, string? Error)> ReadBodyAsync(HttpRequest request, bool isAssign, CancellationToken cancel)
    {
        GongAssignRequest? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<GongAssignRequest>(request.Body, SimulatorJson.Options, cancel).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            return (null, $"Malformed request: {ex.Message}");
        }

        if (body is null)
        {
            return (null, "Malformed request: the body must be a JSON object");
        }

        var problems = new List<string>();
        if (body.CrmProspectsIds is null)
        {
            problems.Add("crmProspectsIds is required");
        }
        else if (body.CrmProspectsIds.Count == 0)
        {
            problems.Add("crmProspectsIds must not be empty");
        }

        if (isAssign && string.IsNullOrWhiteSpace(body.FlowId))
        {
            problems.Add("flowId is required");
        }

        if (isAssign && string.IsNullOrWhiteSpace(body.FlowInstanceOwnerEmail))
        {
            problems.Add("flowInstanceOwnerEmail is required");
        }

        return (body, problems.Count == 0 ? null : string.Join("; ", problems));
    }

    internal static bool IsAuthorized(HttpRequest request, SimulatorOptions options)
    {
        if (!AuthenticationHeaderValue.TryParse(request.Headers.Authorization.ToString(), out var header) || header.Parameter is null)
        {
            return false;
        }

        if (header.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
        {
            string decoded;
            try
            {
                decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header.Parameter));
            }
            catch (FormatException)
            {
                return false;
            }

            return decoded == $"{options.AccessKey}:{options.AccessKeySecret}";
        }

        return header.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase)
            && !string.IsNullOrEmpty(options.BearerToken)
            && header.Parameter == options.BearerToken;
    }

    /// <summary>Retry-After as integer seconds or as an HTTP date at least that far ahead; null in <see cref="RetryAfterMode.None"/>.</summary>
    internal static string? RetryAfterValue(int seconds, RetryAfterMode mode, DateTimeOffset now) => mode switch
    {
        RetryAfterMode.Seconds => seconds.ToString(CultureInfo.InvariantCulture),
        RetryAfterMode.HttpDate => CeilingToSecond(now.AddSeconds(seconds)).ToString("R", CultureInfo.InvariantCulture),
        _ => null,
    };

    private static DateTimeOffset CeilingToSecond(DateTimeOffset value)
    {
        var remainder = value.UtcTicks % TimeSpan.TicksPerSecond;
        return remainder == 0 ? value : value.AddTicks(TimeSpan.TicksPerSecond - remainder);
    }

    /// <summary>Drops the connection without an answer; with linger 0 the OS sends RST rather than FIN where it can.</summary>
    private static void ResetConnection(HttpContext http)
    {
        var socket = http.Features.Get<IConnectionSocketFeature>()?.Socket;
        if (socket is not null)
        {
            try
            {
                socket.LingerState = new LingerOption(true, 0);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Already closing: the abort below ends it either way.
            }
        }

        http.Abort();
    }
}
