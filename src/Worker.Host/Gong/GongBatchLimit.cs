using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Worker.Host.Operations;

namespace Worker.Host.Gong;

/// <summary>
/// The most prospects per assign call that Gong accepts, shared by every replica through the <c>rate_gate</c> row:
/// learned from a 400 whose message names the limit ("You can assign up to 100 prospects in a single request", "at
/// most 100 prospects can be assigned …") or from a bisection that proves one (a call of n refused with 400 whose two
/// halves were both answered: a bad id would have failed one half). Gong's endpoint page says 200, its newer spec 100.
/// The effective batch size is the configured <c>MaxBatchSize</c>, lowered to a learned limit stored under the same
/// MaxBatchSize and after <c>ForgetBatchLimitLearnedBefore</c>. Until a call of a given size has been answered, this
/// replica sends at most one call of that (unproven) size at a time, so a lowered limit costs at most one 400 per
/// replica; an answered call of MaxBatchSize in any replica is stored as the limit MaxBatchSize (where none is stored),
/// so every replica knows that size is accepted. Gauge: <c>flow_assignment.gong.batch_limit</c>. Thread-safe.
/// </summary>
internal sealed partial class GongBatchLimit : IDisposable
{
    private const string ReadSql = "SELECT learned_batch_limit, batch_limit_learned_at, batch_limit_max_batch_size FROM rate_gate WHERE id = 1";

    // Only ever lowers a limit learned under the same MaxBatchSize; replaces one that configuration says to forget.
    private const string LearnSql = """
        UPDATE rate_gate SET
            learned_batch_limit = @limit, batch_limit_learned_at = COALESCE(@now, clock_timestamp()),
            batch_limit_reason = @reason, batch_limit_max_batch_size = @max_batch_size
        WHERE id = 1 AND (learned_batch_limit IS NULL OR learned_batch_limit > @limit
            OR batch_limit_max_batch_size IS DISTINCT FROM @max_batch_size
            OR (@forget_before IS NOT NULL AND batch_limit_learned_at < @forget_before))
        """;

    // Stores that Gong answered a call of MaxBatchSize: only where no limit (valid under this configuration) is stored,
    // so it never lowers a learned limit nor survives a change of MaxBatchSize or ForgetBatchLimitLearnedBefore.
    private const string ProveSql = """
        UPDATE rate_gate SET
            learned_batch_limit = @limit, batch_limit_learned_at = COALESCE(@now, clock_timestamp()),
            batch_limit_reason = @reason, batch_limit_max_batch_size = @max_batch_size
        WHERE id = 1 AND (learned_batch_limit IS NULL
            OR batch_limit_max_batch_size IS DISTINCT FROM @max_batch_size
            OR (@forget_before IS NOT NULL AND batch_limit_learned_at < @forget_before))
        """;

    private static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(1);

    /// <summary>How often the calls waiting for this replica's one unproven call look in Postgres whether another
    /// replica proved the size meanwhile (one read per interval for all of them). Replicas started together each send a
    /// first call of MaxBatchSize; the first answer proves it for all, and the others' waiting calls see it within this
    /// interval instead of waiting for their own answer (200–800 ms in the simulator).</summary>
    private static readonly TimeSpan ProofPoll = TimeSpan.FromMilliseconds(100);

    private readonly NpgsqlDataSource dataSource;
    private readonly IOptions<GongOptions> options;
    private readonly TimeProvider time;
    private readonly SemaphoreSlim unproven = new(1, 1);
    private readonly Lock sync = new();
    private int provenSize;
    private int storedProof;
    private int effective;
    private DateTimeOffset readAt = DateTimeOffset.MinValue;

    /// <summary>Creates the store and the gauge <c>flow_assignment.gong.batch_limit</c>.</summary>
    public GongBatchLimit(NpgsqlDataSource dataSource, IOptions<GongOptions> options, TimeProvider time, IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        this.dataSource = dataSource;
        this.options = options;
        this.time = time;
        effective = options.Value.MaxBatchSize;
        meterFactory.Create(WorkerMetrics.MeterName).CreateObservableGauge("flow_assignment.gong.batch_limit", () => Volatile.Read(ref effective), "{prospect}",
            "Most prospects per assign call this replica sends: Gong:MaxBatchSize, or the lower limit learned from Gong's 400s.");
    }

    /// <summary>The effective batch size (1–MaxBatchSize), read from Postgres at most once a second.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public Task<int> GetAsync(CancellationToken cancellationToken) => GetAsync(CacheFor, cancellationToken);

    /// <summary>The effective batch size, read from Postgres when the last read is <paramref name="maxAge"/> or older.</summary>
    private async Task<int> GetAsync(TimeSpan maxAge, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        lock (sync)
        {
            if (now - readAt < maxAge)
            {
                return effective;
            }
        }

        var o = options.Value;
        int? learned = null;
        await using (var command = dataSource.CreateCommand(ReadSql))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false) && !reader.IsDBNull(0))
            {
                var at = reader.IsDBNull(1) ? (DateTimeOffset?)null : reader.GetFieldValue<DateTimeOffset>(1);
                var under = reader.IsDBNull(2) ? (int?)null : reader.GetInt32(2);
                if (under == o.MaxBatchSize && (o.ForgetBatchLimitLearnedBefore is not { } forget || at >= forget))
                {
                    learned = reader.GetInt32(0);
                }
            }
        }

        var value = Math.Clamp(learned ?? o.MaxBatchSize, 1, o.MaxBatchSize);
        if (learned is not null)
        {
            // Gong accepts calls up to a limit it named, or one proved by an answer (here or by another replica).
            Prove(value);
        }

        lock (sync)
        {
            effective = value;
            readAt = now;
        }

        return value;
    }

    /// <summary>Stores <paramref name="limit"/> for every replica (only ever lowering it) and uses it at once here.</summary>
    /// <param name="limit">Prospects per call, 1–MaxBatchSize.</param>
    /// <param name="reason">Gong's message or the bisection (max 512 characters).</param>
    /// <param name="cancellationToken">Cancels the update.</param>
    /// <exception cref="NpgsqlException">Postgres unreachable.</exception>
    public async Task LearnAsync(int limit, string reason, CancellationToken cancellationToken)
    {
        limit = Math.Clamp(limit, 1, options.Value.MaxBatchSize);
        await StoreAsync(LearnSql, limit, reason, cancellationToken).ConfigureAwait(false);
        lock (sync)
        {
            effective = Math.Min(effective, limit);
            readAt = time.GetUtcNow();
        }
    }

    /// <summary>Records that Gong answered a call of <paramref name="size"/> prospects with something other than 400
    /// (<see cref="Prove"/>), and, for a call of <c>MaxBatchSize</c>, stores it for every replica as the learned limit
    /// (= MaxBatchSize, with that reason; only where no limit valid under this configuration is stored, once per
    /// process): a replica that starts later, or waits for its own first call of that size, need not prove it again.</summary>
    /// <exception cref="NpgsqlException">Postgres unreachable (the proof still holds in this process).</exception>
    public async Task ProveAsync(int size, CancellationToken cancellationToken)
    {
        Prove(size);
        var max = options.Value.MaxBatchSize;
        if (size < max || Interlocked.Exchange(ref storedProof, 1) == 1)
        {
            return;
        }

        try
        {
            var reason = string.Create(CultureInfo.InvariantCulture, $"a call of {max} prospects (Gong:MaxBatchSize) was answered");
            await StoreAsync(ProveSql, max, reason, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Volatile.Write(ref storedProof, 0);
            throw;
        }
    }

    /// <summary>Runs <paramref name="sql"/> (<see cref="LearnSql"/> or <see cref="ProveSql"/>) with the limit, its
    /// reason (cut to 512 characters), the configured MaxBatchSize, the clock and ForgetBatchLimitLearnedBefore.</summary>
    private async Task StoreAsync(string sql, int limit, string reason, CancellationToken cancellationToken)
    {
        var o = options.Value;
        await using var command = dataSource.CreateCommand(sql);
        command.Parameters.Add(new NpgsqlParameter("limit", NpgsqlDbType.Integer) { Value = limit });
        command.Parameters.Add(new NpgsqlParameter("reason", NpgsqlDbType.Varchar) { Value = reason.Length > 512 ? reason[..512] : reason });
        command.Parameters.Add(new NpgsqlParameter("max_batch_size", NpgsqlDbType.Integer) { Value = o.MaxBatchSize });
        command.Parameters.Add(new NpgsqlParameter("now", NpgsqlDbType.TimestampTz)
        {
            Value = o.RateGateClock == RateGateClock.Local ? time.GetUtcNow().ToUniversalTime() : DBNull.Value,
        });
        command.Parameters.Add(new NpgsqlParameter("forget_before", NpgsqlDbType.TimestampTz)
        {
            Value = o.ForgetBatchLimitLearnedBefore is { } forget ? forget.ToUniversalTime() : DBNull.Value,
        });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether a call of <paramref name="size"/> prospects is known to be accepted: one that size or larger was
    /// answered (not 400) in this process, or a limit at least that size is stored for every replica (named by Gong,
    /// proved by a bisection, or by an answered call of MaxBatchSize in any replica).</summary>
    public bool IsProven(int size) => size <= Volatile.Read(ref provenSize);

    /// <summary>Records that Gong answered a call of <paramref name="size"/> prospects with something other than 400.</summary>
    public void Prove(int size)
    {
        int current;
        do
        {
            current = Volatile.Read(ref provenSize);
        }
        while (size > current && Interlocked.CompareExchange(ref provenSize, size, current) != current);
    }

    /// <summary>Waits for this replica's single slot for a call of <paramref name="size"/> prospects, unproven when the
    /// wait began; dispose the result to free it. Every 100 ms it looks whether another replica proved the size
    /// (<see cref="ProveAsync"/>); then it returns a holder of nothing (check <see cref="IsProven"/>).</summary>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public async Task<IDisposable> EnterUnprovenAsync(int size, CancellationToken cancellationToken)
    {
        while (!await unproven.WaitAsync(ProofPoll, cancellationToken).ConfigureAwait(false))
        {
            try
            {
                await GetAsync(ProofPoll, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                // Only a shortcut: keep waiting for this replica's own answer.
            }

            if (IsProven(size))
            {
                return new Releaser(null);
            }
        }

        return new Releaser(unproven);
    }

    /// <summary>The limit a 400 message states ("up to N prospects", "at most N prospects", "maximum of N prospects",
    /// "limit of N prospects", "N prospects at most"), or null.</summary>
    public static int? ParseLimit(string? message)
    {
        if (string.IsNullOrEmpty(message))
        {
            return null;
        }

        var match = LimitPattern().Match(message);
        if (!match.Success)
        {
            return null;
        }

        var digits = match.Groups["n"].Success ? match.Groups["n"].Value : match.Groups["m"].Value;
        return int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : null;
    }

    [GeneratedRegex(@"(?:\b(?:up\s+to|at\s+most|maximum\s+(?:of\s+)?|max\.?|limit\s+(?:of\s+|is\s+)?|no\s+more\s+than)\s*(?<n>\d{1,6})\s+(?:crm\s*)?prospects?\b)|(?:\b(?<m>\d{1,6})\s+(?:crm\s*)?prospects?\s+at\s+most\b)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex LimitPattern();

    /// <inheritdoc />
    public void Dispose() => unproven.Dispose();

    private sealed class Releaser(SemaphoreSlim? semaphore) : IDisposable
    {
        private int released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) == 0)
            {
                semaphore?.Release();
            }
        }
    }
}
