using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Worker.Host.Gong;

/// <summary>The primary handler of the Gong HttpClient: hands every request to its lane in <see cref="GongConnectionLanes"/>.</summary>
internal sealed class GongLaneRoutingHandler(GongConnectionLanes lanes) : HttpMessageHandler
{
    /// <inheritdoc />
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        lanes.SendAsync(request, cancellationToken);
}
