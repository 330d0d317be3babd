namespace Worker.Host.Gong;

/// <summary>A request reached its connection after the latest start its rate-gate slot allows; nothing was sent.</summary>
internal sealed class GongLateForSlotException : Exception
{
    /// <summary>Creates the exception for a request <paramref name="late"/> past its latest start.</summary>
    public GongLateForSlotException(TimeSpan late)
        : base($"late for the rate-gate slot by {late.TotalMilliseconds:0.#} ms at the connection; nothing was sent")
    {
        Late = late;
    }

    /// <summary>Creates the exception with a message.</summary>
    public GongLateForSlotException()
        : base("late for the rate-gate slot at the connection; nothing was sent")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public GongLateForSlotException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public GongLateForSlotException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>How far past its latest start the request was.</summary>
    public TimeSpan Late { get; }
}
