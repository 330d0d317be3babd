using System.Net;
using System.Net.Sockets;
using Polly.CircuitBreaker;
using Worker.Persistence.Entities;

namespace Worker.Host.Gong;

/// <summary>What one HTTP call to Gong came to (DESIGN.md "Gong client"); finer than <see cref="GongCallOutcomeClass"/>.</summary>
internal enum GongCallKind
{
    /// <summary>200 with a readable body: per-prospect outcomes.</summary>
    Answered,

    /// <summary>429: not processed; blocks the shared gate until Retry-After.</summary>
    TooManyRequests,

    /// <summary>Never reached Gong (connection refused, DNS failure, circuit open): safe to resend.</summary>
    NotSent,

    /// <summary>Timeout, reset after sending, 500/502/503/504, unreadable 200: may have been processed.</summary>
    OutcomeUnknown,

    /// <summary>400: refused for this batch (split to isolate the cause).</summary>
    BadRequest,

    /// <summary>401: refused for every batch until credentials work.</summary>
    Unauthorized,

    /// <summary>403: refused for this batch (licence, scope, workspace).</summary>
    Forbidden,

    /// <summary>404: the flow does not exist.</summary>
    NotFound,

    /// <summary>Any other status (3xx, other 4xx): not processed as far as HTTP says; retried a bounded number of times.</summary>
    Unexpected,

    /// <summary>The worker is shutting down; a call already sent may have been processed.</summary>
    Cancelled,

    /// <summary>Not sent: the caller reached the send later than its rate-gate slot allows; it takes a new slot.</summary>
    LateForSlot,
}

/// <summary>Maps HTTP statuses and exceptions to <see cref="GongCallKind"/> and <see cref="GongCallOutcomeClass"/>.</summary>
internal static class GongCallClassifier
{
    /// <summary>Classifies an HTTP status that arrived.</summary>
    public static GongCallKind FromStatus(int status) => status switch
    {
        200 => GongCallKind.Answered,
        400 => GongCallKind.BadRequest,
        401 => GongCallKind.Unauthorized,
        403 => GongCallKind.Forbidden,
        404 => GongCallKind.NotFound,
        408 => GongCallKind.OutcomeUnknown,
        429 => GongCallKind.TooManyRequests,
        >= 500 and <= 599 => GongCallKind.OutcomeUnknown,
        _ => GongCallKind.Unexpected,
    };

    /// <summary>The stored class of a call kind.</summary>
    public static GongCallOutcomeClass ToOutcomeClass(GongCallKind kind) => kind switch
    {
        GongCallKind.Answered => GongCallOutcomeClass.Answered,
        GongCallKind.TooManyRequests or GongCallKind.NotSent => GongCallOutcomeClass.SafeToResend,
        GongCallKind.OutcomeUnknown or GongCallKind.Cancelled => GongCallOutcomeClass.OutcomeUnknown,
        GongCallKind.Unauthorized => GongCallOutcomeClass.RefusedForAll,
        _ => GongCallOutcomeClass.RefusedForBatch,
    };

    /// <summary>
    /// True when the request certainly never reached Gong: the TCP connection was never established (refused,
    /// unreachable, DNS failure) or the circuit breaker refused the call. Only these are resent by the Polly
    /// pipeline; a timeout or a reset after sending is not among them.
    /// </summary>
    public static bool IsNotSent(Exception exception)
    {
        if (exception is BrokenCircuitException)
        {
            return true;
        }

        if (exception is not HttpRequestException http)
        {
            return false;
        }

        if (http.HttpRequestError == HttpRequestError.NameResolutionError)
        {
            return true;
        }

        // ConnectionError is raised while establishing the connection; require the socket error too, so that a
        // failure after the request bytes left can never be mistaken for one.
        return http.HttpRequestError == HttpRequestError.ConnectionError
            && FindSocketError(http) is SocketError.ConnectionRefused or SocketError.HostNotFound or SocketError.HostUnreachable
                or SocketError.NetworkUnreachable or SocketError.TryAgain or SocketError.NoData or SocketError.AddressNotAvailable;
    }

    /// <summary>True when the result counts as a failure of Gong's service for the circuit breaker.</summary>
    public static bool IsServiceFailure(HttpResponseMessage? response, Exception? exception)
    {
        if (exception is not null)
        {
            return exception is Polly.Timeout.TimeoutRejectedException or HttpRequestException;
        }

        return response is { StatusCode: HttpStatusCode.InternalServerError or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout };
    }

    private static SocketError? FindSocketError(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is SocketException socket)
            {
                return socket.SocketErrorCode;
            }
        }

        return null;
    }
}
