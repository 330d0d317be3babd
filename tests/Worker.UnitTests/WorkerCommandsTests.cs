using Worker.Host;

namespace Worker.UnitTests;

public sealed class WorkerCommandsTests
{
    [Theory]
    [InlineData("statsu")]
    [InlineData("--Gong:BaseUrl=http://127.0.0.1:5080", "bogus")]
    [InlineData("--Gong:AccessKey", "key", "extra")]
    public void A_bare_word_is_a_stray_token_and_is_named(params string[] tokens)
    {
        Assert.Equal(tokens[^1], WorkerCommands.FindStrayToken(tokens));
    }

    [Theory]
    [InlineData("--Gong:BaseUrl=http://127.0.0.1:5080")]
    [InlineData("--Gong:AccessKey", "key")]
    [InlineData("/RabbitMq:Host=127.0.0.1", "Dispatch:Enabled=false")]
    public void Configuration_arguments_are_accepted(params string[] tokens)
    {
        Assert.Null(WorkerCommands.FindStrayToken(tokens));
    }

    [Fact]
    public async Task An_unknown_subcommand_exits_with_2_instead_of_starting_a_worker()
    {
        var exitCode = await WorkerCommands.Create().Parse(["statsu"]).InvokeAsync();
        Assert.Equal(2, exitCode);
    }

    [Fact]
    public async Task Invalid_settings_exit_with_1_and_name_the_setting_instead_of_a_stack_trace()
    {
        var error = new StringWriter();
        var original = Console.Error;
        Console.SetError(error);
        int exitCode;
        try
        {
            exitCode = await WorkerCommands.Create().Parse(
            [
                "run", "--Urls=http://127.0.0.1:0", "--ConnectionStrings:Postgres=Host=127.0.0.1;Port=1;Database=none;Username=none",
                "--RabbitMq:Password=none", "--Gong:BaseUrl=http://127.0.0.1:9/", "--Gong:AccessKey=a",
                "--Gong:AccessKeySecret=b", "--Gong:MaxBatchSize=0",

                // The host's own JSON log of the failed start would land in the test run's console; what is checked is stderr.
                "--Logging:Console:LogLevel:Default=None",
            ]).InvokeAsync();
        }
        finally
        {
            Console.SetError(original);
        }

        Assert.Equal(1, exitCode);
        Assert.Contains("Invalid configuration:", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("MaxBatchSize", error.ToString(), StringComparison.Ordinal);
    }
}
