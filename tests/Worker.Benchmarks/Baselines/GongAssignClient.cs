using System.Net.Http.Json;
using System.Threading.RateLimiting;
using Polly.CircuitBreaker;
using Polly.RateLimiting;
using Polly.Timeout;

namespace Worker.Benchmarks.Baselines;

/// <summary>
/// A typed HttpClient for Gong's <c>POST /v2/flows/prospects/assign</c> as a user would write it from Gong's endpoint
/// page: JSON in, JSON out, <see cref="HttpResponseMessage.EnsureSuccessStatusCode"/>. Retries, timeouts and the
/// circuit breaker come from <c>AddStandardResilienceHandler</c> around it, the rate limit from
/// <see cref="ClientSideRateLimitedHandler"/> inside that (so every attempt, retries included, takes a permit).
/// </summary>
internal sealed class GongAssignClient(HttpClient http)
{
    /// <summary>
    /// Sends one assign call for <paramref name="pairs"/> (request id, prospect id; at most 200 distinct prospects, one
    /// (flow, owner)) and turns the answer into one outcome per pair; a call the resilience handler gave up on makes
    /// every pair <c>Failed</c> with the reason.
    /// </summary>
    public async Task<List<BaselineOutcome>> AssignAsync(
        string flowId, string ownerEmail, IReadOnlyList<(string RequestId, string ProspectId)> pairs, CancellationToken cancellationToken)
    {
        var ids = pairs.Select(p => p.ProspectId).Distinct(StringComparer.Ordinal).ToList();
        var assigned = new Dictionary<string, AssignedProspect>(StringComparer.Ordinal);
        var notAssigned = new Dictionary<string, NotAssignedProspect>(StringComparer.Ordinal);
        string? failure = null;
        try
        {
            using var response = await http.PostAsJsonAsync(
                "v2/flows/prospects/assign", new AssignRequest(ids, flowId, ownerEmail), cancellationToken);
            response.EnsureSuccessStatusCode();
            var answer = await response.Content.ReadFromJsonAsync<AssignResponse>(cancellationToken)
                ?? throw new HttpRequestException("Gong answered 200 with an empty body");
            assigned = answer.ProspectsAssigned.ToDictionary(a => a.CrmProspectId, StringComparer.Ordinal);
            notAssigned = answer.ProspectsNotAssigned.ToDictionary(a => a.CrmProspectId, StringComparer.Ordinal);
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or BrokenCircuitException or RateLimiterRejectedException)
        {
            failure = ex.Message;
        }

        var now = DateTimeOffset.UtcNow;
        return pairs.Select(p => new BaselineOutcome
        {
            RequestId = p.RequestId,
            CrmProspectId = p.ProspectId,
            FlowId = flowId,
            OwnerEmail = ownerEmail,
            Status = failure is not null ? "Failed" : assigned.ContainsKey(p.ProspectId) ? "Assigned" : "NotAssigned",
            FlowInstanceId = assigned.GetValueOrDefault(p.ProspectId)?.FlowInstanceId,
            ErrorCode = failure is not null ? "CallFailed" : notAssigned.GetValueOrDefault(p.ProspectId)?.ErrorCode,
            ErrorMessage = failure ?? notAssigned.GetValueOrDefault(p.ProspectId)?.ErrorMessage,
            RecordedAt = now,
        }).ToList();
    }

    private sealed record AssignRequest(IReadOnlyList<string> CrmProspectsIds, string FlowId, string FlowInstanceOwnerEmail);

    private sealed record AssignResponse(string RequestId, List<AssignedProspect> ProspectsAssigned, List<NotAssignedProspect> ProspectsNotAssigned);

    private sealed record AssignedProspect(string CrmProspectId, string FlowInstanceId, string FlowInstanceStatus);

    private sealed record NotAssignedProspect(string CrmProspectId, string ErrorCode, string ErrorMessage);
}

/// <summary>
/// The client-side rate limiter of Microsoft's "Rate limit an HTTP handler in .NET" page: a
/// <see cref="DelegatingHandler"/> that waits for a permit of a <see cref="RateLimiter"/> before each send.
/// </summary>
internal sealed class ClientSideRateLimitedHandler(RateLimiter limiter) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var lease = await limiter.AcquireAsync(permitCount: 1, cancellationToken);
        return lease.IsAcquired
            ? await base.SendAsync(request, cancellationToken)
            : new HttpResponseMessage(System.Net.HttpStatusCode.TooManyRequests) { RequestMessage = request };
    }
}
