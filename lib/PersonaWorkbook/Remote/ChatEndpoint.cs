using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using OpenAI;
using OpenAI.Chat;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Reporting;

namespace PersonaWorkbook.Remote;

/// <summary>
/// One OpenAI-compatible chat-completions endpoint (OpenAI, a vLLM server, …) as the workbook calls it, for the LLM
/// judge and for sampling answers from a served model: 429, 5xx, timeouts and refused connections are retried with
/// jittered exponential backoff (honouring Retry-After), a spending cap is checked before every HTTP attempt, and the
/// API key is cut out of every message and log line. Safe to call concurrently.
/// </summary>
public sealed partial class ChatEndpoint
{
    readonly LlmJudgeOptions _options;
    readonly string _role;
    readonly ChatClient _client;
    readonly Func<TimeSpan, CancellationToken, Task> _delay;
    readonly Random _jitter;
    readonly object _gate = new();
    int _requests, _retries;
    long _tokens;

    /// <param name="role">How messages name the endpoint ("Judge", "Model").</param>
    /// <param name="delay">Waits between retries; tests pass a recorder instead of sleeping.</param>
    public ChatEndpoint(LlmJudgeOptions options, string role, Func<TimeSpan, CancellationToken, Task>? delay = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        (_options, _role) = (options, role);
        _delay = delay ?? Task.Delay;
        _jitter = new Random(options.JitterSeed);
        var clientOptions = new OpenAIClientOptions
        {
            Endpoint = options.BaseUrl,
            // Retries are ours (counted, capped by the budget, logged); the SDK's own would hide them.
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            NetworkTimeout = options.RequestTimeout,
        };
        _client = new ChatClient(options.Model, new ApiKeyCredential(options.Key!), clientOptions);
    }

    public LlmJudgeOptions Options => _options;

    /// <summary>HTTP attempts, retries and tokens (estimated before sending, corrected to reported usage) so far.</summary>
    public (int Requests, int Retries, long Tokens) Spent
    {
        get { lock (_gate) return (_requests, _retries, _tokens); }
    }

    /// <summary>
    /// Sends <paramref name="messages"/> until a reply comes (or the retries run out: an <see cref="LlmJudgeException"/>
    /// naming the endpoint, the last status and the attempts), charging <paramref name="estimate"/> tokens against the cap
    /// before each attempt. Returns the completion (its shape checked) and how many attempts it took.
    /// </summary>
    public async Task<(ChatCompletion Completion, int Attempts)> CompleteAsync(IReadOnlyList<ChatMessage> messages, ChatCompletionOptions chatOptions,
        long estimate, CancellationToken cancellationToken = default)
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
            ClientResult<ChatCompletion> result;
            try
            {
                result = await _client.CompleteChatAsync(messages, chatOptions, timeout.Token);
            }
            catch (ClientResultException e) when (e.Status == 0 && !cancellationToken.IsCancellationRequested)
            {
                // No HTTP response: connection refused, DNS failure, reset, or the SDK's own network timeout.
                lastStatus = null;
                unreachable = e.InnerException is not (OperationCanceledException or TimeoutException);
                lastProblem = unreachable
                    ? $"unreachable ({Redact(e.InnerException?.Message ?? e.Message)})"
                    : $"no reply within {_options.RequestTimeout.TotalSeconds:0.###} s";
                continue;
            }
            catch (ClientResultException e) when (e.Status == 429 || e.Status >= 500)
            {
                lastStatus = e.Status;
                lastProblem = $"HTTP {e.Status}";
                lastRetryAfter = RetryAfter(e);
                continue;
            }
            catch (ClientResultException e)
            {
                throw Fail($"rejected the request with HTTP {e.Status}: {Redact(e.Message)}", e.Status, attempts);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                lastStatus = null;
                lastProblem = $"no reply within {_options.RequestTimeout.TotalSeconds:0.###} s";
                continue;
            }
            catch (HttpRequestException e)
            {
                lastStatus = null;
                unreachable = true;
                lastProblem = $"unreachable ({Redact(e.Message)})";
                continue;
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                // The SDK reads the body as it returns: invalid JSON, or JSON of the wrong kind (an array, a string).
                throw Fail($"answered with a body that is not a chat completion ({Redact(e.Message)})", 200, attempts);
            }

            // The SDK parses lazily and throws index or null-reference errors on a JSON body that lacks the fields it
            // expects, so the shape is checked here first, for a message that says what is missing.
            if (MissingField(result.GetRawResponse().Content) is string missing)
                throw Fail($"answered with a body that is not a chat completion (no {missing})", 200, attempts);
            if (result.Value.Usage?.TotalTokenCount is int actual)
                lock (_gate) _tokens += actual - estimate;
            return (result.Value, attempts);
        }
        string what = unreachable ? $"is {lastProblem}" : $"kept failing ({lastProblem})";
        throw Fail($"{what} after {attempts} attempt(s)", lastStatus, attempts);
    }

    static string? MissingField(BinaryData body)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(body); }
        catch (JsonException) { return "valid JSON"; }
        using var _ = doc;
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) return "JSON object";
        if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array || choices.GetArrayLength() == 0)
            return "choices";
        if (!choices[0].TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.Object)
            return "choices[0].message";
        return null;
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
