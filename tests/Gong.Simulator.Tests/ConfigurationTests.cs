using Microsoft.Extensions.Configuration;

namespace Gong.Simulator.Tests;

public sealed class ConfigurationTests
{
    [Fact]
    public void Short_switches_and_section_keys_bind_onto_the_options()
    {
        string[] args =
        [
            "--rps", "50", "--daily-limit", "0", "--retry-after-mode", "HttpDate", "--batch-limit", "100", "--seed", "7",
            "--Simulator:Flows:0:Id=900", "--Simulator:Flows:0:Exclusive=true",
            "--Simulator:SeedAssignments:0:CrmProspectId=s-1", "--Simulator:SeedAssignments:0:FlowId=900",
            "--Simulator:Faults:ForbiddenFlowIds:0=222",
        ];

        var configuration = new ConfigurationBuilder().AddCommandLine(args, new Dictionary<string, string>(GongSimulatorApp.SwitchMappings)).Build();
        var options = configuration.GetSection(SimulatorOptions.SectionName).Get<SimulatorOptions>()!;

        Assert.Equal((50, 0, RetryAfterMode.HttpDate), (options.RateLimit.RequestsPerSecond, options.RateLimit.DailyCallLimit, options.RateLimit.RetryAfterMode));
        Assert.Equal((100, 7), (options.Faults.BatchLimit, options.Seed));
        Assert.True(Assert.Single(options.Flows).Exclusive);
        Assert.Equal("900", Assert.Single(options.SeedAssignments).FlowId);
        Assert.Equal(["222"], options.Faults.ForbiddenFlowIds);
    }
}
