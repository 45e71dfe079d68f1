using OpenAI.Chat;
using PersonaWorkbook.Grading;
using WorkbookChat = PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Remote;

/// <summary>
/// A model behind an OpenAI-compatible chat-completions endpoint — a vLLM server with a 7B–70B model and its LoRA
/// adapters (each served under its own name), or an OpenAI fine-tuned model id — sampled for evaluation the way the
/// workbook samples a local model: one request per answer, at the given temperature, seeded (servers that honour the
/// seed give the same answers again), with the endpoint's retries and spending cap.
/// </summary>
public sealed class ServedModel
{
    /// <summary>The key variable for a served model; a local server that checks no key needs none (vLLM's "EMPTY" is sent).</summary>
    public const string ApiKeyVariable = "WORKBOOK_MODEL_API_KEY";

    readonly ChatEndpoint _endpoint;

    public ServedModel(LlmJudgeOptions options, Func<TimeSpan, CancellationToken, Task>? delay = null) => _endpoint = new ChatEndpoint(options, "Model", delay);

    /// <summary>Endpoint options for <paramref name="model"/> at <paramref name="baseUrl"/>, the key from <see cref="ApiKeyVariable"/>, then OPENAI_API_KEY.</summary>
    public static LlmJudgeOptions Options(string baseUrl, string model, int? maxRequests = null, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var key = environment(ApiKeyVariable) is { Length: > 0 } k ? k : environment(LlmJudgeOptions.OpenAiApiKeyVariable) is { Length: > 0 } o ? o : "EMPTY";
        return LlmJudgeOptions.FromEnvironment(baseUrl, model, key, name => null, maxRequests: maxRequests);
    }

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
        for (int i = 0; i < samples; i++)
        {
            var options = new ChatCompletionOptions { Temperature = (float)temperature, MaxOutputTokenCount = maxTokens };
#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK.
            options.Seed = seed + i;
#pragma warning restore OPENAI001
            var (completion, _) = await _endpoint.CompleteAsync(messages, options, estimate, cancellationToken);
            answers[i] = (string.Concat(completion.Content.Select(p => p.Text ?? "")), completion.FinishReason == ChatFinishReason.Stop);
        }
        return answers;
    }
}
