using System.Net;
using Worker.Contracts;
using Worker.IntegrationTests.EndToEnd;

namespace Worker.IntegrationTests.Operations;

/// <summary>The OTLP trace exporter sends to the endpoint named by OTEL_EXPORTER_OTLP_ENDPOINT (here a local HTTP listener).</summary>
public sealed class OtlpExportTests(ITestOutputHelper output)
{
    [Fact]
    public async Task With_OTEL_EXPORTER_OTLP_ENDPOINT_set_spans_are_posted_to_the_collector()
    {
        var port = RunningWorker.ClosedPort();
        using var collector = new HttpListener();
        collector.Prefixes.Add($"http://127.0.0.1:{port}/");
        collector.Start();
        var received = new TaskCompletionSource<(string Path, string ContentType, long Length)>(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = Task.Run(async () =>
        {
            while (collector.IsListening)
            {
                var context = await collector.GetContextAsync();
                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                received.TrySetResult((context.Request.Url!.AbsolutePath, context.Request.ContentType ?? string.Empty, body.Length));
                context.Response.StatusCode = 200;
                context.Response.Close();
            }
        });

        await using var world = await EndToEndWorld.StartAsync(settings:
        [
            $"--OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{port}",
            "--OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            "--OTEL_BSP_SCHEDULE_DELAY=500",
        ], output: output);
        await world.PublishAsync(new AssignProspectsToFlow("otlp-1", "1695493301223597777", "owner@example.com", ["otlp-a", "otlp-b"]));
        await world.WaitForEventsAsync(["otlp-1"], TimeSpan.FromSeconds(90));

        var export = await received.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("/v1/traces", export.Path);
        Assert.Equal("application/x-protobuf", export.ContentType);
        Assert.True(export.Length > 0);
        collector.Stop();
    }
}
