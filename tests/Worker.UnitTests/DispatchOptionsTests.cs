using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Worker.Host.Dispatch;

namespace Worker.UnitTests;

public sealed class DispatchOptionsTests
{
    [Fact]
    public void MaxBatchSize_falls_back_to_the_Gong_setting_and_an_invalid_value_names_the_setting()
    {
        Assert.Equal(100, Resolve(new() { ["Gong:MaxBatchSize"] = "100" }).MaxBatchSize);
        Assert.Equal(50, Resolve(new() { ["Gong:MaxBatchSize"] = "100", ["Dispatch:MaxBatchSize"] = "50" }).MaxBatchSize);
        Assert.Equal(200, Resolve([]).MaxBatchSize);
        var error = Assert.Throws<OptionsValidationException>(() => Resolve(new() { ["Dispatch:MaxConcurrentBatches"] = "0" }));
        Assert.Contains("Dispatch__MaxConcurrentBatches", error.Message, StringComparison.Ordinal);
        var tooBig = Assert.Throws<OptionsValidationException>(() => Resolve(new() { ["Gong:MaxBatchSize"] = "500" }));
        Assert.Contains("Gong:MaxBatchSize", tooBig.Message, StringComparison.Ordinal);
    }

    private static DispatchOptions Resolve(Dictionary<string, string?> settings)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddDispatch();
        using var provider = builder.Services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<DispatchOptions>>().Value;
    }
}
