using System.Text.Json;
using OpenAI.Chat;
using PersonaWorkbook.Grading;

namespace PersonaWorkbook.Remote;

/// <summary>
/// One OpenAI-compatible chat-completions endpoint (OpenAI, a vLLM server, …) as the workbook calls it, for the LLM
/// judge and for sampling answers from a served model, with <see cref="ApiCaller"/>'s retries, spending cap and key
/// redaction. Safe to call concurrently.
/// </summary>
public sealed class ChatEndpoint
{
    readonly ApiCaller _caller;
    readonly ChatClient _client;

    /// <param name="role">How messages name the endpoint ("Judge", "Model").</param>
    /// <param name="delay">Waits between retries; tests pass a recorder instead of sleeping.</param>
    public ChatEndpoint(LlmJudgeOptions options, string role, Func<TimeSpan, CancellationToken, Task>? delay = null)
    {
        _caller = new ApiCaller(options, role, delay);
        _client = new ChatClient(options.Model, _caller.Credential, _caller.ClientOptions());
    }

    public LlmJudgeOptions Options => _caller.Options;

    /// <summary>HTTP attempts, retries and tokens (estimated before sending, corrected to reported usage) so far.</summary>
    public (int Requests, int Retries, long Tokens) Spent => _caller.Spent;

    /// <summary>
    /// Sends <paramref name="messages"/> until a reply comes (<see cref="ApiCaller.SendAsync"/>), charging
    /// <paramref name="estimate"/> tokens against the cap before each attempt. Returns the completion (its shape checked)
    /// and how many attempts it took.
    /// </summary>
    public async Task<(ChatCompletion Completion, int Attempts)> CompleteAsync(IReadOnlyList<ChatMessage> messages, ChatCompletionOptions chatOptions,
        long estimate, CancellationToken cancellationToken = default)
    {
        var (result, attempts) = await _caller.SendAsync(token => _client.CompleteChatAsync(messages, chatOptions, token), estimate, "a chat completion", cancellationToken);
        // The SDK parses lazily and throws index or null-reference errors on a JSON body that lacks the fields it
        // expects, so the shape is checked here first, for a message that says what is missing.
        if (MissingField(result.GetRawResponse().Content) is string missing)
            throw Fail($"answered with a body that is not a chat completion (no {missing})", 200, attempts);
        if (result.Value.Usage?.TotalTokenCount is int actual) _caller.CorrectTokens(estimate, actual);
        return (result.Value, attempts);
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

    /// <summary>An error naming the endpoint and model.</summary>
    public LlmJudgeException Fail(string what, int? status, int attempts) => _caller.Fail(what, status, attempts);

    /// <summary>The text with the API key cut out (<see cref="ApiCaller.Redact"/>).</summary>
    public string Redact(string text) => _caller.Redact(text);
}
