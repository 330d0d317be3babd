using Microsoft.Extensions.Options;

namespace Worker.Host.Gong;

/// <summary>
/// Cross-field checks of <see cref="GongOptions"/> that data annotations cannot express: the base URL and the
/// single auth mode. Every message names the setting and its environment variable.
/// </summary>
internal sealed class GongOptionsValidator : IValidateOptions<GongOptions>
{
    public ValidateOptionsResult Validate(string? name, GongOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();

        if (string.IsNullOrWhiteSpace(options.BaseUrl)
            || !Uri.TryCreate(options.BaseUrl.Trim(), UriKind.Absolute, out var baseUrl)
            || (baseUrl.Scheme != Uri.UriSchemeHttps && baseUrl.Scheme != Uri.UriSchemeHttp))
        {
            failures.Add($"Gong:BaseUrl (Gong__BaseUrl) must be an absolute https URL such as https://api.gong.io or your tenant's https://us-12345.api.gong.io; got '{options.BaseUrl}'.");
        }
        else if (baseUrl.Scheme == Uri.UriSchemeHttp && !baseUrl.IsLoopback)
        {
            failures.Add($"Gong:BaseUrl (Gong__BaseUrl) uses plain http to '{baseUrl.Host}': http is accepted only for loopback hosts (the simulator); use https.");
        }
        else if (!string.IsNullOrEmpty(baseUrl.Query) || !string.IsNullOrEmpty(baseUrl.Fragment) || !string.IsNullOrEmpty(baseUrl.UserInfo))
        {
            failures.Add("Gong:BaseUrl (Gong__BaseUrl) must not carry a query, fragment or user info.");
        }

        var hasKey = !string.IsNullOrWhiteSpace(options.AccessKey);
        var hasSecret = !string.IsNullOrWhiteSpace(options.AccessKeySecret);
        var hasBearer = !string.IsNullOrWhiteSpace(options.BearerToken);
        if (hasKey != hasSecret)
        {
            failures.Add("Gong:AccessKey (Gong__AccessKey) and Gong:AccessKeySecret (Gong__AccessKeySecret) must be set together (Basic auth).");
        }
        else if (hasKey && hasBearer)
        {
            failures.Add("Set either Gong:AccessKey + Gong:AccessKeySecret (Gong__AccessKey, Gong__AccessKeySecret) or Gong:BearerToken (Gong__BearerToken), not both.");
        }
        else if (!hasKey && !hasBearer)
        {
            failures.Add("Gong credentials are missing: set Gong:AccessKey and Gong:AccessKeySecret (Gong__AccessKey, Gong__AccessKeySecret) or Gong:BearerToken (Gong__BearerToken).");
        }

        if (options.TooManyRequestsMaxBackoff < options.TooManyRequestsBackoff)
        {
            failures.Add("Gong:TooManyRequestsMaxBackoff (Gong__TooManyRequestsMaxBackoff) must not be below Gong:TooManyRequestsBackoff (Gong__TooManyRequestsBackoff).");
        }

        if (options.UnauthorizedMaxProbeDelay < options.UnauthorizedProbeDelay)
        {
            failures.Add("Gong:UnauthorizedMaxProbeDelay (Gong__UnauthorizedMaxProbeDelay) must not be below Gong:UnauthorizedProbeDelay (Gong__UnauthorizedProbeDelay).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
