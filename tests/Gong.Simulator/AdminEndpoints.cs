namespace Gong.Simulator;

/// <summary>Test and demo support under <c>/_sim</c>: faults, rate limit, call log, stats, seeding, reset. No auth (loopback only).</summary>
internal static class AdminEndpoints
{
    public static IEndpointRouteBuilder MapAdminEndpoints(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/_sim");
        admin.MapGet("/faults", (SimulatorState state) => TypedResults.Json(state.Faults, SimulatorJson.Options));
        admin.MapPut("/faults", (FaultOptions faults, SimulatorState state) =>
        {
            state.SetFaults(faults);
            return TypedResults.Json(state.Faults, SimulatorJson.Options);
        });
        admin.MapGet("/rate-limit", (SimulatorState state) => TypedResults.Json(state.RateLimit, SimulatorJson.Options));
        admin.MapPut("/rate-limit", (RateLimitOptions rateLimit, SimulatorState state) =>
        {
            state.SetRateLimit(rateLimit);
            return TypedResults.Json(state.RateLimit, SimulatorJson.Options);
        });
        admin.MapGet("/calls", (SimulatorState state, long? after, bool? includeIds) =>
        {
            var calls = state.GetCalls(after ?? 0);
            if (includeIds == false)
            {
                calls = [.. calls.Select(c => c with { Ids = [] })];
            }

            return TypedResults.Json(calls, SimulatorJson.Options);
        });
        admin.MapGet("/stats", (SimulatorState state) => TypedResults.Json(state.GetStats(), SimulatorJson.Options));
        admin.MapPost("/assignments", (List<SeedAssignment> seeds, SimulatorState state) =>
        {
            state.AddAssignments(seeds);
            return TypedResults.NoContent();
        });
        admin.MapPost("/reset", (SimulatorState state) =>
        {
            state.Reset();
            return TypedResults.NoContent();
        });
        app.MapGet("/health", () => TypedResults.Text("ok"));
        return app;
    }
}
