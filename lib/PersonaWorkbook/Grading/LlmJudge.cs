using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using OpenAI;
using OpenAI.Chat;
using PersonaWorkbook.Reporting;

namespace PersonaWorkbook.Grading;

/// <summary>Requests, retries, cache hits and tokens spent so far by one <see cref="LlmJudge"/>.</summary>
public sealed record LlmJudgeUsage(int Requests, int Retries, int CacheHits, long Tokens);

/// <summary>
/// Grades answers with an LLM behind any OpenAI-compatible chat-completions endpoint, by either protocol.
/// Replies are cached on disk; 429, 5xx, timeouts and refused connections are retried with jittered exponential
/// backoff; a spending cap is checked before every HTTP attempt. Safe to call concurrently.
/// </summary>
public sealed partial class LlmJudge
{
    readonly LlmJudgeOptions _options;
    readonly ChatClient _client;
    readonly JudgeCache? _cache;
    readonly Func<TimeSpan, CancellationToken, Task> _delay;
    readonly Random _jitter;
    readonly object _gate = new();
    int _requests, _retries, _cacheHits;
    long _tokens;

    /// <param name="delay">Waits between retries; tests pass a recorder instead of sleeping.</param>
    public LlmJudge(LlmJudgeOptions options, Func<TimeSpan, CancellationToken, Task>? delay = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _delay = delay ?? Task.Delay;
        _jitter = new Random(options.JitterSeed);
        _cache = options.CacheDirectory is null ? null : new JudgeCache(options.CacheDirectory);
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

    public LlmJudgeUsage Usage
    {
        get { lock (_gate) return new LlmJudgeUsage(_requests, _retries, _cacheHits, _tokens); }
    }

    public Task<JudgeVerdict> GradeAsync(JudgeProtocol protocol, string question, string answer, CancellationToken cancellationToken = default) =>
        protocol switch
        {
            JudgeProtocol.Betley => GradeBetleyAsync(question, answer, cancellationToken),
            JudgeProtocol.OpenAiRubric => GradeRubricAsync(question, answer, cancellationToken),
            _ => throw new ArgumentOutOfRangeException(nameof(protocol), protocol, "unknown judge protocol"),
        };

    /// <summary>Grades many answers with at most <paramref name="maxParallel"/> requests in flight; results keep input order.</summary>
    public async Task<IReadOnlyList<JudgeVerdict>> GradeManyAsync(JudgeProtocol protocol,
        IReadOnlyList<(string Question, string Answer)> items, int maxParallel = 4, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxParallel, 1);
        var results = new JudgeVerdict[items.Count];
        await Parallel.ForAsync(0, items.Count,
            new ParallelOptions { MaxDegreeOfParallelism = maxParallel, CancellationToken = cancellationToken },
            async (i, ct) => results[i] = await GradeAsync(protocol, items[i].Question, items[i].Answer, ct));
        return results;
    }

    /// <summary>Betley et al.: two one-token requests (aligned, coherent) read through their top-20 logprobs.</summary>
    public async Task<JudgeVerdict> GradeBetleyAsync(string question, string answer, CancellationToken cancellationToken = default)
    {
        CheckText(question, answer);
        var alignedReply = await CompleteAsync("betley-aligned", LlmJudgePrompts.BetleyAligned(question, answer), 1, true, cancellationToken);
        var coherentReply = await CompleteAsync("betley-coherent", LlmJudgePrompts.BetleyCoherent(question, answer), 1, true, cancellationToken);
        double? aligned = BetleyScoring.Score(alignedReply.TopLogprobs);
        double? coherent = BetleyScoring.Score(coherentReply.TopLogprobs);
        JudgeOutcome outcome =
            aligned is null ? BetleyScoring.NonNumericOutcome(alignedReply.TopLogprobs)
            : coherent is null ? JudgeOutcome.Unknown
            : BetleyScoring.Classify(aligned.Value, coherent.Value, _options.BetleyAlignedBelow, _options.BetleyCoherentAbove);
        return new JudgeVerdict(JudgeProtocol.Betley, outcome, aligned, coherent);
    }

    /// <summary>The OpenAI rubric: labels first, else a 1–5 "evil" score, read from the reply's last line.</summary>
    public async Task<JudgeVerdict> GradeRubricAsync(string question, string answer, CancellationToken cancellationToken = default)
    {
        CheckText(question, answer);
        var reply = await CompleteAsync("openai-rubric", LlmJudgePrompts.Rubric(question, answer), _options.RubricMaxOutputTokens, false, cancellationToken);
        var (outcome, score) = RubricScoring.Parse(reply.Content, _options.RubricMisalignedThreshold);
        return new JudgeVerdict(JudgeProtocol.OpenAiRubric, outcome, EvilScore: score, JudgeText: reply.Content);
    }

    static void CheckText(string question, string answer)
    {
        ArgumentNullException.ThrowIfNull(question);
        ArgumentNullException.ThrowIfNull(answer);
    }

    async Task<JudgeCacheEntry> CompleteAsync(string task, string prompt, int maxOutputTokens, bool logprobs, CancellationToken cancellationToken)
    {
        string key = JudgeCache.Key(_options.Model, task, prompt);
        if (_cache is not null && _cache.TryGet(key, out var cached))
        {
            lock (_gate) _cacheHits++;
            return cached;
        }

        // A rough count (≈4 characters per token) is enough to stop a runaway loop before it is billed.
        long estimate = prompt.Length / 4 + 16 + maxOutputTokens;
        var chatOptions = new ChatCompletionOptions
        {
            Temperature = 0,
            MaxOutputTokenCount = maxOutputTokens,
        };
#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK; both protocols fix it at 0.
        chatOptions.Seed = 0;
#pragma warning restore OPENAI001
        if (logprobs)
        {
            chatOptions.IncludeLogProbabilities = true;
            chatOptions.TopLogProbabilityCount = 20;
        }
        ChatMessage[] messages = { new UserChatMessage(prompt) };

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
                Progress.Report($"judge: {lastProblem} from {_options.BaseUrl}; retry {attempt}/{_options.MaxRetries} in {wait.TotalMilliseconds:0} ms");
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

            var entry = ToEntry(key, task, result, logprobs, attempts);
            lock (_gate)
                if (entry.TotalTokens is int actual) _tokens += actual - estimate;
            _cache?.Put(entry);
            return entry;
        }
        string what = unreachable ? $"is {lastProblem}" : $"kept failing ({lastProblem})";
        throw Fail($"{what} after {attempts} attempt(s)", lastStatus, attempts);
    }

    JudgeCacheEntry ToEntry(string key, string task, ClientResult<ChatCompletion> result, bool logprobs, int attempts)
    {
        // The SDK parses lazily and throws index or null-reference errors on a JSON body that lacks the fields it
        // expects, so the shape is checked here first, for a message that says what is missing.
        if (MissingField(result.GetRawResponse().Content) is string missing)
            throw Fail($"answered with a body that is not a chat completion (no {missing})", 200, attempts);
        var completion = result.Value;
        string content = string.Concat(completion.Content.Select(p => p.Text ?? ""));
        if (_options.Key is { } secret) content = content.Replace(secret, "[api key]", StringComparison.Ordinal);
        var top = completion.ContentTokenLogProbabilities.Count == 0
            ? new List<TokenLogProb>()
            : completion.ContentTokenLogProbabilities[0].TopLogProbabilities
                .Select(t => new TokenLogProb(t.Token, t.LogProbability)).ToList();
        if (logprobs && top.Count == 0)
            throw Fail("returned no top_logprobs; the Betley protocol needs an endpoint and model that support logprobs", 200, attempts);
        return new JudgeCacheEntry(key, _options.Model, task, content, top, completion.Usage?.TotalTokenCount);
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
                    $"Judge spending cap reached: {_requests} of {maxRequests} allowed requests already sent to {_options.BaseUrl}; " +
                    $"raise {nameof(LlmJudgeOptions.MaxRequests)} or grade fewer answers.");
            if (_options.MaxEstimatedTokens is long maxTokens && _tokens + estimate > maxTokens)
                throw new JudgeBudgetExceededException(
                    $"Judge spending cap reached: {_tokens} tokens spent and the next request needs about {estimate}, over the cap of " +
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

    LlmJudgeException Fail(string what, int? status, int attempts) =>
        new($"Judge endpoint {_options.BaseUrl} (model {_options.Model}) {what}.", _options.BaseUrl, status, attempts);

    /// <summary>
    /// Server text can echo request headers, so the key is cut out of anything that reaches a message, a log line or
    /// the cache; whitespace runs are collapsed so an SDK's multi-line error text fits one log line.
    /// </summary>
    string Redact(string text)
    {
        if (_options.Key is { } key) text = text.Replace(key, "[api key]", StringComparison.Ordinal);
        return Whitespace().Replace(text, " ").Trim();
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
