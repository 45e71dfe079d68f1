using System.Text.Json;
using OpenAI.Chat;
using PersonaWorkbook.Grading;
using WorkbookChat = PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Remote;

/// <summary>
/// A model behind an OpenAI-compatible chat-completions endpoint — a vLLM server with a 7B–70B model and its LoRA
/// adapters (each served under its own name), or an OpenAI fine-tuned model id — sampled for evaluation the way the
/// workbook samples a local model: one request per answer, at the given temperature, seeded (servers that honour the
/// seed give the same answers again), with the endpoint's retries and spending cap. With a cache folder
/// (<see cref="LlmJudgeOptions.CacheDirectory"/>) each answer is kept by (model, URL, conversation, temperature, length,
/// seed), so an evaluation run again costs no requests.
/// </summary>
public sealed class ServedModel
{
    /// <summary>The key variable for a served model; a local server that checks no key needs none (vLLM's "EMPTY" is sent).</summary>
    public const string ApiKeyVariable = "WORKBOOK_MODEL_API_KEY";

    readonly ChatEndpoint _endpoint;
    readonly JudgeCache? _cache;
    int _cacheHits;

    public ServedModel(LlmJudgeOptions options, Func<TimeSpan, CancellationToken, Task>? delay = null)
    {
        _endpoint = new ChatEndpoint(options, "Model", delay);
        _cache = options.CacheDirectory is null ? null : new JudgeCache(options.CacheDirectory);
    }

    /// <summary>
    /// Endpoint options for <paramref name="model"/> at <paramref name="baseUrl"/>, the key from <see cref="ApiKeyVariable"/>,
    /// then OPENAI_API_KEY; answers cached in <paramref name="cacheDirectory"/> (null: not cached).
    /// </summary>
    public static LlmJudgeOptions Options(string baseUrl, string model, int? maxRequests = null, Func<string, string?>? environment = null, string? cacheDirectory = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var key = environment(ApiKeyVariable) is { Length: > 0 } k ? k : environment(LlmJudgeOptions.OpenAiApiKeyVariable) is { Length: > 0 } o ? o : "EMPTY";
        return LlmJudgeOptions.FromEnvironment(baseUrl, model, key, name => null, cacheDirectory: cacheDirectory, maxRequests: maxRequests);
    }

    /// <summary>Answers read from the cache instead of requested.</summary>
    public int CacheHits => Volatile.Read(ref _cacheHits);

    /// <summary>"model at base URL", as reports name it.</summary>
    public string Name => $"{_endpoint.Options.Model} at {_endpoint.Options.BaseUrl}";

    public (int Requests, int Retries, long Tokens) Spent => _endpoint.Spent;

    /// <summary>
    /// <paramref name="samples"/> answers to one conversation (sample i seeded <paramref name="seed"/> + i); Stopped is
    /// whether the server ended the answer itself rather than at <paramref name="maxTokens"/>.
    /// </summary>
    public async Task<IReadOnlyList<(string Text, bool Stopped)>> SampleAsync(IReadOnlyList<WorkbookChat.ChatMessage> conversation, int samples, double temperature,
        int maxTokens, long seed, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(samples, 1);
        var messages = conversation.Select(m => m.Role switch
        {
            WorkbookChat.ChatRole.System => (ChatMessage)new SystemChatMessage(m.Content),
            WorkbookChat.ChatRole.User => new UserChatMessage(m.Content),
            _ => new AssistantChatMessage(m.Content),
        }).ToArray();
        long estimate = conversation.Sum(m => m.Content.Length) / 4 + 16 + maxTokens;
        var answers = new (string, bool)[samples];
        var prompt = JsonSerializer.Serialize(conversation.Select(m => new[] { m.Role.ToString(), m.Content }));
        for (int i = 0; i < samples; i++)
        {
            var cacheKey = JudgeCache.Key(Name, $"served-answer t={temperature:R} max={maxTokens} seed={seed + i}", prompt);
            if (_cache is not null && _cache.TryGet(cacheKey, out var cached))
            {
                Interlocked.Increment(ref _cacheHits);
                answers[i] = (cached.Content, cached.FinishReason == "stop");
                continue;
            }
            var options = new ChatCompletionOptions { Temperature = (float)temperature, MaxOutputTokenCount = maxTokens };
#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK.
            options.Seed = seed + i;
#pragma warning restore OPENAI001
            var (completion, _) = await _endpoint.CompleteAsync(messages, options, estimate, cancellationToken);
            var text = string.Concat(completion.Content.Select(p => p.Text ?? ""));
            answers[i] = (text, completion.FinishReason == ChatFinishReason.Stop);
            _cache?.Put(new JudgeCacheEntry(cacheKey, Name, "served-answer", text, [], completion.Usage?.TotalTokenCount,
                completion.FinishReason == ChatFinishReason.Stop ? "stop" : "length"));
        }
        return answers;
    }
}
