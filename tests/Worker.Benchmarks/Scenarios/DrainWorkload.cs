using static Worker.Benchmarks.Scenarios.BenchSupport;

namespace Worker.Benchmarks.Scenarios;

/// <summary>
/// The <c>drain</c> workload, shared by <c>drain</c> and <c>compare</c>: about <c>total</c> prospects over
/// <c>groups</c> (flow, owner) groups of random sizes (weights 0.2–1.8, fixed seed), each group split into requests of
/// 1–500 prospects. Prospect ids are unique across the workload, so Σ⌈n_group/200⌉ is the fewest assign calls.
/// </summary>
internal static class DrainWorkload
{
    /// <summary>One request of the workload, as published.</summary>
    internal sealed record Request(string RequestId, string FlowId, string Owner, IReadOnlyList<string> ProspectIds)
    {
        public byte[] ToPlainJson() => PlainJson(RequestId, FlowId, Owner, ProspectIds);
    }

    /// <summary>The requests, group after group; the same arguments give the same requests.</summary>
    public static IReadOnlyList<Request> Create(int groups, int total)
    {
        var random = new Random(20261129);
        var weights = Enumerable.Range(0, groups).Select(_ => 0.2 + (1.6 * random.NextDouble())).ToArray();
        var sizes = weights.Select(w => (int)Math.Round(total * w / weights.Sum())).ToArray();
        var requests = new List<Request>();
        for (var g = 0; g < groups; g++)
        {
            var flow = (1_695_493_301_223_500_000L + g).ToString(Invariant);
            var owner = $"owner{g}@example.com";
            for (var next = 0; next < sizes[g];)
            {
                var count = Math.Min(sizes[g] - next, random.Next(1, 501));
                requests.Add(new Request($"drain-{g:D3}-{next:D6}", flow, owner, Enumerable.Range(next, count).Select(i => $"0035g{g:D3}{i:D9}").ToList()));
                next += count;
            }
        }

        return requests;
    }

    /// <summary>The fewest assign calls that can carry <paramref name="requests"/>: Σ over groups of ⌈n_group/200⌉.</summary>
    public static long MinimumCalls(IEnumerable<Request> requests, int batchSize = 200) =>
        requests.GroupBy(r => (r.FlowId, r.Owner))
            .Sum(g => (long)Math.Ceiling(g.SelectMany(r => r.ProspectIds).Distinct(StringComparer.Ordinal).Count() / (double)batchSize));
}
