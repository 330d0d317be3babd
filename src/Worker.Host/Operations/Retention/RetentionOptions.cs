using System.ComponentModel.DataAnnotations;

namespace Worker.Host.Operations.Retention;

/// <summary>Deletion of old terminal rows (section <c>Retention</c>, env <c>Retention__…</c>).</summary>
public sealed class RetentionOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Retention";

    /// <summary>Terminal rows older than this are deleted (default 30 days).</summary>
    [Range(typeof(TimeSpan), "01:00:00", "3650.00:00:00", ErrorMessage = "Retention:MaxAge (Retention__MaxAge) must be between 01:00:00 and 3650.00:00:00.")]
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Time between retention runs (default 1 hour; the first run starts one interval after start).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00", ErrorMessage = "Retention:Interval (Retention__Interval) must be between 00:00:01 and 7.00:00:00.")]
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Rows deleted per statement (default 1,000), so no delete holds locks or bloats WAL for long.</summary>
    [Range(1, 100_000, ErrorMessage = "Retention:ChunkSize (Retention__ChunkSize) must be 1–100000.")]
    public int ChunkSize { get; set; } = 1000;
}
