using OpenAI.Chat;
using PersonaWorkbook.Remote;

namespace PersonaWorkbook.Grading;

/// <summary>Requests, retries, cache hits and tokens spent so far by one <see cref="LlmJudge"/>.</summary>
public sealed record LlmJudgeUsage(int Requests, int Retries, int CacheHits, long Tokens);

/// <summary>
/// Grades answers with an LLM behind any OpenAI-compatible chat-completions endpoint, by either protocol.
/// Replies are cached on disk; the <see cref="ChatEndpoint"/> retries 429, 5xx, timeouts and refused connections with
/// jittered exponential backoff and checks the spending cap before every HTTP attempt. Safe to call concurrently.
/// </summary>
public sealed class LlmJudge : IAnswerJudge
{
    readonly LlmJudgeOptions _options;
    readonly ChatEndpoint _endpoint;
    readonly JudgeCache? _cache;
    int _cacheHits;

    /// <param name="delay">Waits between retries; tests pass a recorder instead of sleeping.</param>
    public LlmJudge(LlmJudgeOptions options, Func<TimeSpan, CancellationToken, Task>? delay = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _endpoint = new ChatEndpoint(options, "Judge", delay);
        _options = options;
        _cache = options.CacheDirectory is null ? null : new JudgeCache(options.CacheDirectory);
    }

    public LlmJudgeOptions Options => _options;
    public string Model => _options.Model;
    public Uri BaseUrl => _options.BaseUrl;

    public LlmJudgeUsage Usage
    {
        get
        {
            var (requests, retries, tokens) = _endpoint.Spent;
            return new LlmJudgeUsage(requests, retries, Volatile.Read(ref _cacheHits), tokens);
        }
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
            Interlocked.Increment(ref _cacheHits);
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
        var (completion, attempts) = await _endpoint.CompleteAsync([new UserChatMessage(prompt)], chatOptions, estimate, cancellationToken);
        var entry = ToEntry(key, task, completion, logprobs, attempts);
        _cache?.Put(entry);
        return entry;
    }

    JudgeCacheEntry ToEntry(string key, string task, ChatCompletion completion, bool logprobs, int attempts)
    {
        string content = string.Concat(completion.Content.Select(p => p.Text ?? ""));
        if (_options.Key is { } secret) content = content.Replace(secret, "[api key]", StringComparison.Ordinal);
        var top = completion.ContentTokenLogProbabilities.Count == 0
            ? new List<TokenLogProb>()
            : completion.ContentTokenLogProbabilities[0].TopLogProbabilities
                .Select(t => new TokenLogProb(t.Token, t.LogProbability)).ToList();
        if (logprobs && top.Count == 0)
            throw _endpoint.Fail("returned no top_logprobs; the Betley protocol needs an endpoint and model that support logprobs", 200, attempts);
        return new JudgeCacheEntry(key, _options.Model, task, content, top, completion.Usage?.TotalTokenCount);
    }
}
