namespace Worker.Demo;

/// <summary>Demo parameters (see Program for their meaning).</summary>
internal sealed record DemoSettings(
    int Requests,
    int Pairs,
    int Seed,
    TimeSpan Timeout,
    string Postgres,
    Uri RabbitMq,
    Uri Simulator,
    double CallsPerSecondLimit);
