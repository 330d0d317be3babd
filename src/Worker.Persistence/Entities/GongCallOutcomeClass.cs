namespace Worker.Persistence.Entities;

/// <summary>How a Gong HTTP call was classified (DESIGN.md, "Gong client"); stored as its name.</summary>
public enum GongCallOutcomeClass
{
    /// <summary>200 with per-prospect outcomes.</summary>
    Answered,

    /// <summary>Not processed, safe to resend: 429, connection refused, DNS failure.</summary>
    SafeToResend,

    /// <summary>Timeout, reset after sending, 500/502/503/504: reconcile before resending.</summary>
    OutcomeUnknown,

    /// <summary>400, 403, 404: refused for this batch.</summary>
    RefusedForBatch,

    /// <summary>401: refused for every batch until credentials work again.</summary>
    RefusedForAll,
}
