using MassTransit;
using Worker.Contracts;

namespace Worker.Benchmarks.Baselines;

/// <summary>
/// Baseline 1, the idiomatic MassTransit answer: a batch consumer. MassTransit collects up to 200 messages of one
/// (flow, owner) (<c>GroupBy</c>) for at most 2 s, and this consumer sends their distinct prospects in calls of 200,
/// then writes every outcome with EF Core. Options in <see cref="BaselineHost"/>.
/// </summary>
internal sealed class BatchAssignConsumer(GongAssignClient gong, BaselineDbContext db) : IConsumer<Batch<AssignProspectsToFlow>>
{
    public async Task Consume(ConsumeContext<Batch<AssignProspectsToFlow>> context)
    {
        var first = context.Message[0].Message;
        var pairs = context.Message
            .SelectMany(m => m.Message.CrmProspectIds!.Distinct(StringComparer.Ordinal).Select(id => (m.Message.RequestId!, id!)))
            .ToList();

        // Same prospect in two requests of the batch: sent once, its outcome recorded for both.
        var chunks = pairs.GroupBy(p => p.Item2, StringComparer.Ordinal).Chunk(200);
        foreach (var chunk in chunks)
        {
            var outcomes = await gong.AssignAsync(first.FlowId!, first.FlowInstanceOwnerEmail!, chunk.SelectMany(g => g).ToList(), context.CancellationToken);
            db.Outcomes.AddRange(outcomes);
            await db.SaveChangesAsync(context.CancellationToken);
        }
    }
}

/// <summary>
/// Baseline 2, what low-code integrations do: every request is sent as it arrives, in calls of at most 200 prospects,
/// through the same client, resilience handler and limiter; outcomes written with EF Core.
/// </summary>
internal sealed class PerMessageAssignConsumer(GongAssignClient gong, BaselineDbContext db) : IConsumer<AssignProspectsToFlow>
{
    public async Task Consume(ConsumeContext<AssignProspectsToFlow> context)
    {
        var message = context.Message;
        foreach (var chunk in message.CrmProspectIds!.Distinct(StringComparer.Ordinal).Chunk(200))
        {
            var outcomes = await gong.AssignAsync(
                message.FlowId!, message.FlowInstanceOwnerEmail!, chunk.Select(id => (message.RequestId!, id!)).ToList(), context.CancellationToken);
            db.Outcomes.AddRange(outcomes);
            await db.SaveChangesAsync(context.CancellationToken);
        }
    }
}
