namespace Worker.Host.Operations.Retention;

/// <summary>Registers the retention job with its validated options.</summary>
public static class RetentionExtensions
{
    /// <summary>
    /// Adds <c>Retention</c> options (validated at start) and the retention hosted service, which deletes finished rows
    /// past their retention. Needs persistence and <see cref="TimeProvider"/>.
    /// </summary>
    public static IHostApplicationBuilder AddRetention(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<RetentionOptions>().BindConfiguration(RetentionOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddHostedService<RetentionService>();
        return builder;
    }
}
