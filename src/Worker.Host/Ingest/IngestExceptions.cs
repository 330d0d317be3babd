namespace Worker.Host.Ingest;

/// <summary>
/// The message carries no requestId the worker can store and answer to (missing, empty, longer than 256 characters
/// or holding a NUL character): it goes to the error queue with this message as its <c>MT-Fault-Message</c> header.
/// </summary>
public sealed class UnusableRequestIdException : Exception
{
    /// <summary>Creates the exception with the reason.</summary>
    public UnusableRequestIdException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public UnusableRequestIdException()
    {
    }

    /// <summary>Creates the exception with an inner exception.</summary>
    public UnusableRequestIdException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// A request with this requestId was already stored with different content: the stored one stands and this message
/// goes to the error queue with this message as its <c>MT-Fault-Message</c> header.
/// </summary>
public sealed class RequestIdConflictException : Exception
{
    /// <summary>Creates the exception with the reason.</summary>
    public RequestIdConflictException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public RequestIdConflictException()
    {
    }

    /// <summary>Creates the exception with an inner exception.</summary>
    public RequestIdConflictException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
