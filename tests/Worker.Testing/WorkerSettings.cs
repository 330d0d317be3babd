namespace Worker.Testing;

/// <summary>Command-line settings for worker hosts started by tests and benchmarks.</summary>
public static class WorkerSettings
{
    /// <summary>
    /// A host that ingests only: dispatch off, and a Gong client that is configured (it validates at start) but
    /// points at a closed loopback port, so nothing can ever leave the machine.
    /// </summary>
    public static readonly IReadOnlyList<string> IngestOnly =
    [
        "--Dispatch:Enabled=false",
        "--Gong:BaseUrl=http://127.0.0.1:9/",
        "--Gong:AccessKey=test-access-key",
        "--Gong:AccessKeySecret=test-access-key-secret",
    ];
}
