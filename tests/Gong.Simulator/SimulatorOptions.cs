namespace Gong.Simulator;

/// <summary>
/// Start-time configuration of the simulator (configuration section <c>Simulator</c>). Faults and the rate limit
/// can also be changed at runtime through the admin endpoints.
/// </summary>
public sealed class SimulatorOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Simulator";

    /// <summary>Access key accepted as the user part of Basic auth.</summary>
    public string AccessKey { get; set; } = "sim-access-key";

    /// <summary>Access key secret accepted as the password part of Basic auth.</summary>
    public string AccessKeySecret { get; set; } = "sim-access-key-secret";

    /// <summary>Token accepted as <c>Authorization: Bearer</c>; null or empty disables bearer auth.</summary>
    public string? BearerToken { get; set; } = "sim-bearer-token";

    /// <summary>Flows that exist, with their name, workspace and exclusivity.</summary>
    public List<FlowDefinition> Flows { get; set; } = [];

    /// <summary>
    /// When true, any flow id made of digits exists (non-exclusive, named "Flow {id}") unless listed in
    /// <see cref="MissingFlowIds"/>; when false only <see cref="Flows"/> exist and others answer 404.
    /// </summary>
    public bool AnyDigitsFlowExists { get; set; } = true;

    /// <summary>Flow ids that answer 404 even when <see cref="AnyDigitsFlowExists"/> is true.</summary>
    public List<string> MissingFlowIds { get; set; } = [];

    /// <summary>Company setting: a prospect with any open flow instance cannot be added to another flow (InvalidState).</summary>
    public bool SingleActiveFlowPerProspect { get; set; }

    /// <summary>Full names of owners by email (case-insensitive); others are derived from the email's local part.</summary>
    public Dictionary<string, string> OwnerNames { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Prospects already in flows when the simulator starts (and after every reset).</summary>
    public List<SeedAssignment> SeedAssignments { get; set; } = [];

    /// <summary>Prospect ids starting with this always get InvalidArgument. Null or empty disables the rule.</summary>
    public string? InvalidArgumentIdPrefix { get; set; } = "invalid-arg-";

    /// <summary>Prospect ids starting with this always get InvalidState (e.g. a cool-off period). Null or empty disables the rule.</summary>
    public string? InvalidStateIdPrefix { get; set; } = "blocked-";

    /// <summary>Prospect ids starting with this always get UnexpectedError. Null or empty disables the rule.</summary>
    public string? UnexpectedErrorIdPrefix { get; set; } = "unexpected-";

    /// <summary>
    /// Prospect ids starting with this get UnexpectedError on their first assign attempt and are assigned on a later one.
    /// Null or empty disables the rule.
    /// </summary>
    public string? TransientUnexpectedErrorIdPrefix { get; set; } = "flaky-";

    /// <summary>
    /// Prospect ids starting with this are neither assigned nor listed in either list of the 200 answer (an answer that
    /// forgets a prospect). Null or empty (the default) disables the rule.
    /// </summary>
    public string? MissingFromAnswerIdPrefix { get; set; }

    /// <summary>Status of a newly created flow instance (Gong: Pending, Running or Paused).</summary>
    public string NewInstanceStatus { get; set; } = "Running";

    /// <summary>
    /// Read-after-write delay of the lookup, in milliseconds: an instance younger than this is not yet visible to
    /// <c>POST /v2/flows/prospects</c>. 0 = visible at once.
    /// </summary>
    public int LookupVisibilityDelayMs { get; set; }

    /// <summary>Whether lookup calls count towards the rate limit (Gong's limit is per company, across all calls).</summary>
    public bool LookupCountsTowardsRateLimit { get; set; } = true;

    /// <summary>Seed of every random choice (latency, fault rolls, flow instance ids), so runs repeat.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>The rate limit at start.</summary>
    public RateLimitOptions RateLimit { get; set; } = new();

    /// <summary>The faults at start (replaced at runtime by <c>PUT /_sim/faults</c>).</summary>
    public FaultOptions Faults { get; set; } = new();
}

/// <summary>A flow the simulator knows.</summary>
public sealed class FlowDefinition
{
    /// <summary>Flow id (digits, ~19 characters in Gong).</summary>
    public string Id { get; set; } = "";

    /// <summary>Flow name returned as <c>flowName</c>; default "Flow {id}".</summary>
    public string? Name { get; set; }

    /// <summary>A prospect in an exclusive flow cannot be added to other flows.</summary>
    public bool Exclusive { get; set; }

    /// <summary>Workspace id returned as <c>workspaceId</c>.</summary>
    public string WorkspaceId { get; set; } = "623457276584334";
}

/// <summary>A prospect already in a flow at start.</summary>
public sealed class SeedAssignment
{
    /// <summary>CRM prospect id.</summary>
    public string CrmProspectId { get; set; } = "";

    /// <summary>Flow id (must exist per the flow rules; exclusivity comes from the flow).</summary>
    public string FlowId { get; set; } = "";

    /// <summary>Owner of the flow instance.</summary>
    public string OwnerEmail { get; set; } = "seed.owner@example.com";

    /// <summary>Instance status: Pending, Running or Paused are open; anything else is closed (lookup skips it).</summary>
    public string Status { get; set; } = "Running";
}

/// <summary>How a 429 carries Retry-After.</summary>
public enum RetryAfterMode
{
    /// <summary><c>Retry-After: 2</c> (integer seconds, what Gong documents).</summary>
    Seconds,

    /// <summary><c>Retry-After: Sun, 29 Nov 2026 10:00:02 GMT</c> (HTTP date, RFC 9110).</summary>
    HttpDate,

    /// <summary>No Retry-After header at all.</summary>
    None,
}

/// <summary>Gong's company-wide rate limit as the simulator enforces it.</summary>
public sealed class RateLimitOptions
{
    /// <summary>Calls accepted in any sliding one-second window (Gong default 3). 0 = unlimited.</summary>
    public int RequestsPerSecond { get; set; } = 3;

    /// <summary>Calls accepted per UTC day (Gong default 10,000). 0 = unlimited.</summary>
    public int DailyCallLimit { get; set; } = 10_000;

    /// <summary>How Retry-After is sent on a 429.</summary>
    public RetryAfterMode RetryAfterMode { get; set; } = RetryAfterMode.Seconds;
}
