using System.Text;
using Worker.Contracts;

namespace Worker.Demo;

/// <summary>
/// A deterministic, realistic workload: requests of 1–500 prospects over a number of (flow, owner) pairs,
/// mostly small, some large; some prospects in several requests of one group; some invalid requests and ids;
/// some prospects already in an exclusive flow (seeded in the simulator).
/// </summary>
internal sealed class Workload
{
    private Workload(string runId, IReadOnlyList<AssignProspectsToFlow> requests, IReadOnlyList<string> exclusiveProspects, string exclusiveFlowId)
    {
        RunId = runId;
        Requests = requests;
        ExclusiveProspects = exclusiveProspects;
        ExclusiveFlowId = exclusiveFlowId;
    }

    public string RunId { get; }

    public IReadOnlyList<AssignProspectsToFlow> Requests { get; }

    /// <summary>Prospects to seed in the simulator as already in <see cref="ExclusiveFlowId"/> (exclusive).</summary>
    public IReadOnlyList<string> ExclusiveProspects { get; }

    public string ExclusiveFlowId { get; }

    public static string FlowId(int pair) => "169549330122359" + (1000 + pair).ToString(System.Globalization.CultureInfo.InvariantCulture);

    public static Workload Create(string runId, int requestCount, int pairs, int seed)
    {
        var random = new Random(seed);
        var exclusiveFlowId = "1695493301223599999";
        var exclusive = Enumerable.Range(0, 50).Select(i => $"00Q{runId}EX{i:D5}").ToList();
        var pools = Enumerable.Range(0, pairs).Select(_ => new List<string>()).ToArray();
        var requests = new List<AssignProspectsToFlow>(requestCount);
        var next = 0;
        for (var r = 0; r < requestCount; r++)
        {
            var pair = random.Next(pairs);
            var size = random.NextDouble() switch
            {
                < 0.70 => random.Next(1, 21),
                < 0.95 => random.Next(21, 201),
                _ => random.Next(201, 501),
            };
            var ids = new List<string>(size);
            for (var i = 0; i < size; i++)
            {
                var roll = random.NextDouble();
                if (roll < 0.02 && pools[pair].Count > 0)
                {
                    ids.Add(pools[pair][random.Next(pools[pair].Count)]); // same prospect again in this group
                }
                else if (roll < 0.025)
                {
                    ids.Add(exclusive[random.Next(exclusive.Count)]); // already in an exclusive flow: NotAssigned
                }
                else if (roll < 0.028)
                {
                    ids.Add(random.Next(2) == 0 ? "bad\u0007id" : new string('x', 256)); // invalid id: Rejected alone
                }
                else
                {
                    var id = $"00Q{runId}{next++:D9}";
                    pools[pair].Add(id);
                    ids.Add(id);
                }
            }

            var owner = $"owner{pair % 10}@example.com";
            var flowId = FlowId(pair);
            var requestId = $"demo-{runId}-{r:D5}";
            var invalid = random.NextDouble();
            if (invalid < 0.005)
            {
                flowId = "12ab"; // Rejected: flowId must be digits
            }
            else if (invalid < 0.01)
            {
                owner = "not-an-email"; // Rejected: invalid email
            }
            else if (invalid < 0.1)
            {
                owner = owner.ToUpperInvariant(); // grouped with the lower-case form
            }

            requests.Add(new AssignProspectsToFlow(requestId, flowId, owner, ids));
        }

        return new Workload(runId, requests, exclusive, exclusiveFlowId);
    }

    /// <summary>The plain JSON a non-.NET publisher would send.</summary>
    public static byte[] ToPlainJson(AssignProspectsToFlow request) =>
        Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(request, new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web)));
}
