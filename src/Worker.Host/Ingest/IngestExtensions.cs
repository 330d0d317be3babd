namespace Worker.Host.Ingest;

/// <summary>Registers ingest: options and the group-commit writer (the consumer is found by MassTransit's assembly scan).</summary>
public static class IngestExtensions
{
    /// <summary>Adds <see cref="IngestOptions"/> (validated at start) and the writer shared by all deliveries.</summary>
    public static IHostApplicationBuilder AddWorkerIngest(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptionsWithValidateOnStart<IngestOptions>().BindConfiguration(IngestOptions.SectionName).ValidateDataAnnotations();
        builder.Services.AddSingleton<IngestWriter>();
        return builder;
    }
}
