using System.ComponentModel.DataAnnotations;
using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Worker.Host;
using Worker.Host.Operations;
using Worker.Testing;

namespace Worker.UnitTests.Operations;

public sealed class OperationsOptionsTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string UnreachablePostgres = "--ConnectionStrings:Postgres=Host=127.0.0.1;Port=1;Database=none;Username=none;Password=none";

    [Fact]
    public void The_host_shutdown_timeout_follows_Operations_ShutdownTimeout()
    {
        using var app = WorkerHost.CreateBuilder([UnreachablePostgres, "--Operations:ShutdownTimeout=00:00:42"]).Build();
        Assert.Equal(TimeSpan.FromSeconds(42), app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }

    [Fact]
    public void The_default_shutdown_timeout_is_25_seconds()
    {
        using var app = WorkerHost.CreateBuilder([UnreachablePostgres]).Build();
        Assert.Equal(TimeSpan.FromSeconds(25), app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }

    [Fact]
    public async Task An_invalid_operations_setting_stops_the_host_at_start_naming_the_setting()
    {
        // The host lifetime reads the shutdown timeout while the host is built, so the error comes before any service starts.
        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            var builder = WorkerHost.CreateBuilder([UnreachablePostgres, "--Operations:ShutdownTimeout=00:30:00", "--Urls=http://127.0.0.1:0"]);
            builder.Logging.UseTestLog(new TestLog(output.WriteLine));
            await using var app = builder.Build();
            await app.StartAsync();
        });
        Assert.Contains("Operations__ShutdownTimeout", error.Message, StringComparison.Ordinal);
    }

    public static TheoryData<Type> OptionsClasses()
    {
        var data = new TheoryData<Type>();
        foreach (var type in SettingsCatalog.OptionsTypes)
        {
            data.Add(type);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(OptionsClasses))]
    public void Every_options_class_is_validated_by_the_composed_host(Type optionsType)
    {
        using var app = WorkerHost.CreateBuilder([UnreachablePostgres]).Build();
        var validators = app.Services.GetServices(typeof(IValidateOptions<>).MakeGenericType(optionsType));
        Assert.NotEmpty(validators);
    }

    [Theory]
    [MemberData(nameof(OptionsClasses))]
    public void Every_validation_message_names_its_setting_and_environment_variable(Type optionsType)
    {
        var section = SettingsCatalog.SectionName(optionsType);
        foreach (var property in optionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            foreach (var attribute in property.GetCustomAttributes<ValidationAttribute>())
            {
                Assert.True(attribute.ErrorMessage is not null, $"{optionsType.Name}.{property.Name}: [{attribute.GetType().Name}] has no ErrorMessage naming the setting.");
                Assert.Contains($"{section}:{property.Name}", attribute.ErrorMessage, StringComparison.Ordinal);
                Assert.Contains($"{section}__{property.Name}", attribute.ErrorMessage, StringComparison.Ordinal);
            }
        }
    }
}
