namespace Worker.IntegrationTests.Gong;

/// <summary>Holds each request in the Gong client's HttpClient pipeline (after the resilience handler, before the
/// connection lane) for as long as <c>hold</c> says: a busy machine, where time passes between the gate and the wire.</summary>
internal sealed class PipelineHoldHandler(Func<HttpRequestMessage, TimeSpan> hold) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var delay = hold(request);
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, cancellationToken);
        }

        return await base.SendAsync(request, cancellationToken);
    }
}
