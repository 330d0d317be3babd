using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Worker.IntegrationTests.Gong;

/// <summary>
/// A Gong stand-in on loopback Kestrel: the assign and lookup endpoints with Gong's shapes, a memory of
/// assignments, a log of every request, and a hook per endpoint to script faults.
/// </summary>
internal sealed class GongStub : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly TimeProvider clock;
    private long instanceSeq = 1_700_000_000_000_000_000;

    private GongStub(WebApplication app, TimeProvider clock)
    {
        this.app = app;
        this.clock = clock;
    }

    /// <summary>Base URL, e.g. http://127.0.0.1:5123 (no trailing slash).</summary>
    public string BaseUrl { get; private set; } = string.Empty;

    public int Port { get; private set; }

    /// <summary>Every request in arrival order.</summary>
    public ConcurrentQueue<StubRequest> Requests { get; } = new();

    /// <summary>(flowId, prospect) → flow instance id: what "Gong" has committed.</summary>
    public ConcurrentDictionary<(string FlowId, string ProspectId), string> Assigned { get; } = new();

    /// <summary>Runs before the default assign handling; return a response to override it (it may commit first).</summary>
    public Func<StubRequest, Task<IResult?>>? OnAssign { get; set; }

    /// <summary>Runs before the default lookup handling.</summary>
    public Func<StubRequest, Task<IResult?>>? OnLookup { get; set; }

    public IReadOnlyList<StubRequest> Assigns => Requests.Where(r => r.Endpoint == "assign").ToList();

    public IReadOnlyList<StubRequest> Lookups => Requests.Where(r => r.Endpoint == "lookup").ToList();

    public static async Task<GongStub> StartAsync(TimeProvider clock)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var stub = new GongStub(app, clock);
        app.MapPost("/v2/flows/prospects/assign", (Delegate)stub.AssignAsync);
        app.MapPost("/v2/flows/prospects", (Delegate)stub.LookupAsync);
        await app.StartAsync();
        var url = new Uri(app.Urls.First());
        stub.Port = url.Port;
        stub.BaseUrl = $"http://127.0.0.1:{url.Port}";
        return stub;
    }

    /// <summary>Records the ids as committed in the flow (as Gong would before answering).</summary>
    public void Commit(string flowId, IEnumerable<string> ids)
    {
        foreach (var id in ids)
        {
            Assigned.TryAdd((flowId, id), Interlocked.Increment(ref instanceSeq).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    public static IResult Error(int status, string message, IDictionary<string, string>? headers = null) =>
        new ErrorResult(status, message, headers);

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }

    private async Task<IResult> AssignAsync(HttpContext context)
    {
        var request = await ReadAsync(context, "assign");
        if (OnAssign is { } hook && await hook(request) is { } custom)
        {
            return custom;
        }

        return Results.Json(Answer(request));
    }

    /// <summary>Gong's default behaviour: assign every id not already in the flow; the others get InvalidState.</summary>
    public JsonObject Answer(StubRequest request, Func<string, (string Code, string Message)?>? notAssigned = null, ISet<string>? omit = null)
    {
        var assigned = new JsonArray();
        var failed = new JsonArray();
        foreach (var id in request.Ids)
        {
            if (omit?.Contains(id) == true)
            {
                continue;
            }

            if (notAssigned?.Invoke(id) is { } failure)
            {
                failed.Add(new JsonObject { ["flowId"] = request.FlowId, ["crmProspectId"] = id, ["errorCode"] = failure.Code, ["errorMessage"] = failure.Message });
                continue;
            }

            var key = (request.FlowId!, id);
            if (Assigned.ContainsKey(key))
            {
                failed.Add(new JsonObject { ["flowId"] = request.FlowId, ["crmProspectId"] = id, ["errorCode"] = "InvalidState", ["errorMessage"] = "already in flow" });
                continue;
            }

            Commit(request.FlowId!, [id]);
            assigned.Add(Item(request.FlowId!, id, Assigned[key]));
        }

        return new JsonObject
        {
            ["requestId"] = "req-" + Guid.NewGuid().ToString("N")[..12],
            ["prospectsAssigned"] = assigned,
            ["prospectsNotAssigned"] = failed,
            ["someFutureField"] = new JsonObject { ["x"] = 1 },
        };
    }

    private async Task<IResult> LookupAsync(HttpContext context)
    {
        var request = await ReadAsync(context, "lookup");
        if (OnLookup is { } hook && await hook(request) is { } custom)
        {
            return custom;
        }

        var items = new JsonArray();
        foreach (var ((flowId, id), instance) in Assigned)
        {
            if (request.Ids.Contains(id))
            {
                items.Add(Item(flowId, id, instance));
            }
        }

        return Results.Json(new JsonObject { ["requestId"] = "lookup-" + Guid.NewGuid().ToString("N")[..8], ["prospectsAssigned"] = items });
    }

    private static JsonObject Item(string flowId, string id, string instance) => new()
    {
        ["flowId"] = flowId,
        ["flowName"] = "SDR Flow",
        ["crmProspectId"] = id,
        ["flowInstanceId"] = instance,
        ["flowInstanceOwnerEmail"] = "owner@example.com",
        ["flowInstanceCreateDate"] = "2020-11-20T21:30:07.2336921Z",
        ["flowInstanceStatus"] = "Running",
        ["workspaceId"] = "623457276584334",
        ["exclusive"] = false,
    };

    private async Task<StubRequest> ReadAsync(HttpContext context, string endpoint)
    {
        var arrivedAt = clock.GetUtcNow();
        var realArrivedAt = DateTimeOffset.UtcNow;
        using var document = await JsonDocument.ParseAsync(context.Request.Body);
        var root = document.RootElement;
        var ids = root.TryGetProperty("crmProspectsIds", out var list) ? list.EnumerateArray().Select(e => e.GetString()!).ToList() : [];
        var request = new StubRequest(
            endpoint,
            context.Request.Path.Value ?? string.Empty,
            ids,
            root.TryGetProperty("flowId", out var flow) ? flow.GetString() : null,
            root.TryGetProperty("flowInstanceOwnerEmail", out var owner) ? owner.GetString() : null,
            context.Request.Headers.Authorization.ToString(),
            root.GetRawText(),
            arrivedAt,
            realArrivedAt);
        Requests.Enqueue(request);
        return request;
    }

    private sealed class ErrorResult(int status, string message, IDictionary<string, string>? headers) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = status;
            foreach (var (name, value) in headers ?? new Dictionary<string, string>())
            {
                httpContext.Response.Headers[name] = value;
            }

            await httpContext.Response.WriteAsJsonAsync(new { requestId = "err-" + status, errors = new[] { message } });
        }
    }
}

internal sealed record StubRequest(
    string Endpoint,
    string Path,
    IReadOnlyList<string> Ids,
    string? FlowId,
    string? OwnerEmail,
    string Authorization,
    string Body,
    DateTimeOffset ArrivedAt,
    DateTimeOffset RealArrivedAt);
