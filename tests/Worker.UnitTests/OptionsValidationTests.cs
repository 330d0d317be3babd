using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Worker.Host.Messaging;

namespace Worker.UnitTests;

public sealed class OptionsValidationTests
{
    [Fact]
    public void An_out_of_range_RabbitMq_port_fails_with_a_message_naming_the_setting()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection([new("RabbitMq:Port", "70000")])
            .Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration);
        services.AddOptions<RabbitMqOptions>().BindConfiguration(RabbitMqOptions.SectionName).ValidateDataAnnotations();
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<RabbitMqOptions>>().Value);
        Assert.Contains("RabbitMq__Port", error.Message, StringComparison.Ordinal);
    }
}
