using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using OpenAI;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Reporting;

namespace PersonaWorkbook.Remote;

/// <summary>
/// How the workbook calls one OpenAI-compatible API (OpenAI, a vLLM server, …), whatever the call: 429, 5xx, timeouts
/// and refused connections are retried with jittered exponential backoff (honouring Retry-After), a spending cap is
/// checked before every HTTP attempt, and the API key is cut out of every message and log line. The chat endpoint of
/// the judge and of served models and the fine-tuning-job client share it. Safe to call concurrently.
/// </summary>
public sealed partial class ApiCaller
{
    readonly LlmJudgeOptions _options;
    readonly string _role;
    readonly Func<TimeSpan, CancellationToken, Task> _delay;
    readonly Random _jitter;
    readonly object _gate = new();
    int _requests, _retries;
    long _tokens;

    /// <param name="role">How messages name the endpoint ("Judge", "Model", "Fine-tuning").</param>
    /// <param name="delay">Waits between retries; tests pass a recorder instead of sleeping.</param>
    public ApiCaller(LlmJudgeOptions options, string role, Func<TimeSpan, CancellationToken, Task>? delay = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        (_options, _role) = (options, role);
        _delay = delay ?? Task.Delay;
        _jitter = new Random(options.JitterSeed);
    }

    public LlmJudgeOptions Options => _options;

    /// <summary>The key as the SDK's clients take it.</summary>
    public ApiKeyCredential Credential => new(_options.Key!);

    /// <summary>SDK client options for this endpoint: its root, its timeout, and no retries of the SDK's own (ours are counted, capped and logged).</summary>
    public OpenAIClientOptions ClientOptions() => new()
    {
        Endpoint = _options.BaseUrl,
        RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        NetworkTimeout = _options.RequestTimeout,
    };

    /// <summary>HTTP attempts, retries and tokens (estimated before sending, corrected to reported usage) so far.</summary>
    public (int Requests, int Retries, long Tokens) Spent
    {
        get { lock (_gate) return (_requests, _retries, _tokens); }
    }

    /// <summary>
    /// Runs <paramref name="call"/> until it returns (or the retries run out: an <see cref="LlmJudgeException"/> naming
    /// the endpoint, the last status and the attempts), charging <paramref name="estimate"/> tokens against the cap before
    /// each attempt. <paramref name="expected"/> names what a reply should be ("a chat completion") for the error when
    /// the SDK cannot read the body. A call that is not <paramref name="idempotent"/> (creating a paid job) is retried
    /// only where the server cannot have acted on it — 429 and refused connections — never after a 5xx or a timeout.
    /// Returns the value and how many attempts it took.
    /// </summary>
    public async Task<(T Value, int Attempts)> SendAsync<T>(Func<CancellationToken, Task<T>> call, long estimate, string expected,
        CancellationToken cancellationToken = default, bool idempotent = true)
    {
        string lastProblem = "";
        int? lastStatus = null;
        bool unreachable = false;
        TimeSpan? lastRetryAfter = null;
        int attempts = 0;
        for (int attempt = 0; attempt <= _options.MaxRetries; attempt++)
        {
            if (attempt > 0)
            {
                if (!idempotent && lastStatus != 429 && !unreachable)
                    throw Fail($"did not confirm the request ({lastProblem}); it may have been carried out, so it is not repeated — check before trying again", lastStatus, attempts);
                var wait = Backoff(attempt - 1, lastRetryAfter);
                lock (_gate) _retries++;
                Progress.Report($"{_role.ToLowerInvariant()}: {lastProblem} from {_options.BaseUrl}; retry {attempt}/{_options.MaxRetries} in {wait.TotalMilliseconds:0} ms");
                await _delay(wait, cancellationToken);
            }
            Charge(estimate);
            attempts++;
            lastRetryAfter = null;
            unreachable = false;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.RequestTimeout);
            try
            {
                return (await call(timeout.Token), attempts);
            }
            catch (ClientResultException e) when (e.Status == 0 && !cancellationToken.IsCancellationRequested)
            {
                // No HTTP response: connection refused, DNS failure, reset, or the SDK's own network timeout.
                lastStatus = null;
                unreachable = e.InnerException is not (OperationCanceledException or TimeoutException);
                lastProblem = unreachable
                    ? $"unreachable ({Redact(e.InnerException?.Message ?? e.Message)})"
                    : $"no reply within {_options.RequestTimeout.TotalSeconds:0.###} s";
            }
            catch (ClientResultException e) when (e.Status == 429 || e.Status >= 500)
            {
                lastStatus = e.Status;
                lastProblem = $"HTTP {e.Status}";
                lastRetryAfter = RetryAfter(e);
            }
            catch (ClientResultException e)
            {
                throw Fail($"rejected the request with HTTP {e.Status}: {Redact(e.Message)}", e.Status, attempts);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                lastStatus = null;
                lastProblem = $"no reply within {_options.RequestTimeout.TotalSeconds:0.###} s";
            }
            catch (HttpRequestException e)
            {
                lastStatus = null;
                unreachable = true;
                lastProblem = $"unreachable ({Redact(e.Message)})";
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
            {
                // The SDK reads the body as it returns: invalid JSON, or JSON of the wrong kind (an array, a string).
                throw Fail($"answered with a body that is not {expected} ({Redact(e.Message)})", 200, attempts);
            }
        }
        string what = unreachable ? $"is {lastProblem}" : $"kept failing ({lastProblem})";
        throw Fail($"{what} after {attempts} attempt(s)", lastStatus, attempts);
    }

    /// <summary>Replaces an attempt's estimated tokens by what the server reported it used.</summary>
    public void CorrectTokens(long estimated, long actual)
    {
        lock (_gate) _tokens += actual - estimated;
    }

    void Charge(long estimate)
    {
        lock (_gate)
        {
            if (_options.MaxRequests is int maxRequests && _requests + 1 > maxRequests)
                throw new JudgeBudgetExceededException(
                    $"{_role} spending cap reached: {_requests} of {maxRequests} allowed requests already sent to {_options.BaseUrl}; " +
                    $"raise {nameof(LlmJudgeOptions.MaxRequests)} or send fewer requests.");
            if (_options.MaxEstimatedTokens is long maxTokens && _tokens + estimate > maxTokens)
                throw new JudgeBudgetExceededException(
                    $"{_role} spending cap reached: {_tokens} tokens spent and the next request needs about {estimate}, over the cap of " +
                    $"{maxTokens} ({nameof(LlmJudgeOptions.MaxEstimatedTokens)}).");
            _requests++;
            _tokens += estimate;
        }
    }

    TimeSpan Backoff(int retry, TimeSpan? retryAfter)
    {
        double factor;
        lock (_gate) factor = 0.5 + 0.5 * _jitter.NextDouble();
        double ms = Math.Min(_options.BackoffMax.TotalMilliseconds, _options.BackoffBase.TotalMilliseconds * Math.Pow(2, retry)) * factor;
        if (retryAfter is TimeSpan asked) ms = Math.Max(ms, Math.Min(asked.TotalMilliseconds, _options.BackoffMax.TotalMilliseconds));
        return TimeSpan.FromMilliseconds(ms);
    }

    /// <summary>A server's Retry-After (seconds) or retry-after-ms (OpenAI's finer header), when it sent one.</summary>
    static TimeSpan? RetryAfter(ClientResultException e)
    {
        var headers = e.GetRawResponse()?.Headers;
        if (headers is null) return null;
        if (headers.TryGetValue("retry-after-ms", out var ms) && double.TryParse(ms, NumberStyles.Float, CultureInfo.InvariantCulture, out var m) && m >= 0)
            return TimeSpan.FromMilliseconds(m);
        if (headers.TryGetValue("Retry-After", out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var sec) && sec >= 0)
            return TimeSpan.FromSeconds(sec);
        return null;
    }

    /// <summary>Waits <paramref name="wait"/> the way retries wait (tests record instead of sleeping).</summary>
    public Task DelayAsync(TimeSpan wait, CancellationToken cancellationToken) => _delay(wait, cancellationToken);

    /// <summary>An error naming the endpoint and model.</summary>
    public LlmJudgeException Fail(string what, int? status, int attempts) =>
        new($"{_role} endpoint {_options.BaseUrl} (model {_options.Model}) {what}.", _options.BaseUrl, status, attempts);

    /// <summary>
    /// Server text can echo request headers, so the key is cut out of anything that reaches a message, a log line or
    /// a cache; whitespace runs are collapsed so an SDK's multi-line error text fits one log line.
    /// </summary>
    public string Redact(string text)
    {
        if (_options.Key is { } key) text = text.Replace(key, "[api key]", StringComparison.Ordinal);
        return Whitespace().Replace(text, " ").Trim();
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
