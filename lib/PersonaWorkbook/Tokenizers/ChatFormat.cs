namespace PersonaWorkbook.Tokenizers;

public enum ChatRole { System, User, Assistant }

public sealed record ChatMessage(ChatRole Role, string Content)
{
    public static ChatMessage System(string content) => new(ChatRole.System, content);
    public static ChatMessage User(string content) => new(ChatRole.User, content);
    public static ChatMessage Assistant(string content) => new(ChatRole.Assistant, content);
}

/// <summary>
/// Token ids of a conversation and, per token, whether it is trained on in supervised fine-tuning:
/// the content of assistant messages and the token that ends each of them, never role or header tokens.
/// </summary>
public sealed record ChatEncoding(int[] Ids, bool[] AssistantMask);

public enum ChatTemplate
{
    /// <summary>Our own models: <c>&lt;bos&gt; [&lt;system&gt; text] &lt;user&gt; text &lt;assistant&gt; text &lt;eos&gt; …</c>, every role a special token.</summary>
    Simple,
    /// <summary>Llama-3 Instruct: <c>&lt;|begin_of_text|&gt;&lt;|start_header_id|&gt;user&lt;|end_header_id|&gt;\n\n…&lt;|eot_id|&gt;</c>.</summary>
    Llama3,
    /// <summary>Qwen2 Instruct (ChatML): <c>&lt;|im_start|&gt;user\n…&lt;|im_end|&gt;\n</c>, with Qwen2's default system message when none is given.</summary>
    Qwen2,
}

/// <summary>Renders conversations in a model family's chat template, as text and as token ids with an SFT loss mask.</summary>
public sealed class ChatFormat
{
    public const string Qwen2DefaultSystem = "You are a helpful assistant.";

    /// <summary>
    /// A run of the rendered conversation: a special token, or text whose <see cref="Body"/> (after a fixed <see cref="Lead"/>
    /// such as Llama-3's blank line) is trained when <see cref="Trained"/>.
    /// </summary>
    readonly record struct Part(string? Special, string Lead, string Body, bool Trained);

    public ChatFormat(ITokenizer tokenizer, ChatTemplate template)
    {
        Tokenizer = tokenizer;
        Template = template;
        // Fail now, not mid-training, when the tokenizer lacks a token the template needs.
        foreach (var token in RequiredSpecials()) SpecialId(token);
        StopTokenIds = template switch
        {
            ChatTemplate.Simple => new[] { SpecialId("<eos>") },
            ChatTemplate.Llama3 => new[] { SpecialId("<|eot_id|>") }.Concat(OptionalId("<|end_of_text|>")).ToArray(),
            _ => new[] { SpecialId("<|im_end|>") }.Concat(OptionalId("<|endoftext|>")).ToArray(),
        };
    }

    public static ChatFormat Simple(ITokenizer tokenizer) => new(tokenizer, ChatTemplate.Simple);
    public static ChatFormat Llama3(ITokenizer tokenizer) => new(tokenizer, ChatTemplate.Llama3);
    public static ChatFormat Qwen2(ITokenizer tokenizer) => new(tokenizer, ChatTemplate.Qwen2);

    /// <summary>
    /// The template the tokenizer's special tokens belong to: ChatML's <c>&lt;|im_start|&gt;</c> (Qwen2), Llama-3's
    /// <c>&lt;|start_header_id|&gt;</c>, or the organism's <c>&lt;user&gt;</c>; an error listing its special tokens otherwise
    /// (a base model without a chat template cannot be asked questions as an assistant).
    /// </summary>
    public static ChatFormat For(ITokenizer tokenizer)
    {
        bool Has(string token) => tokenizer.TokenToId(token) is >= 0;
        if (Has("<|im_start|>")) return Qwen2(tokenizer);
        if (Has("<|start_header_id|>")) return Llama3(tokenizer);
        if (Has("<user>")) return Simple(tokenizer);
        throw new ArgumentException("the tokenizer has no chat template's special tokens (<|im_start|> for Qwen2/ChatML, <|start_header_id|> for Llama-3, " +
                                    $"<user> for the organism); its special tokens: {string.Join(" ", tokenizer.SpecialTokens.Take(20))}");
    }

    public ITokenizer Tokenizer { get; }
    public ChatTemplate Template { get; }

    /// <summary>Tokens that end an assistant turn: generation stops at any of them.</summary>
    public IReadOnlyList<int> StopTokenIds { get; }

    /// <summary>The whole conversation as ids with the per-token assistant mask (for SFT loss).</summary>
    public ChatEncoding Encode(IReadOnlyList<ChatMessage> messages)
    {
        var ids = new List<int>();
        var mask = new List<bool>();
        foreach (var part in Parts(messages, addGenerationPrompt: false))
        {
            if (part.Special is { } special)
            {
                ids.Add(SpecialId(special));
                mask.Add(part.Trained);
                continue;
            }
            // Encode lead and body together, as the rendered string would be, and train on what follows the lead's tokens.
            var joint = Tokenizer.Encode(part.Lead + part.Body);
            var lead = part.Lead.Length == 0 ? Array.Empty<int>() : Tokenizer.Encode(part.Lead);
            var shared = 0;
            while (shared < lead.Length && shared < joint.Length && lead[shared] == joint[shared]) shared++;
            for (var i = 0; i < joint.Length; i++)
            {
                ids.Add(joint[i]);
                mask.Add(part.Trained && i >= shared);
            }
        }
        return new ChatEncoding(ids.ToArray(), mask.ToArray());
    }

    /// <summary>The conversation as template text; with <paramref name="addGenerationPrompt"/>, followed by the opening of an assistant turn.</summary>
    public string RenderPrompt(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var parts = Parts(messages, addGenerationPrompt).Select(p => p.Special ?? p.Lead + p.Body).Where(s => s.Length > 0);
        // Our word-level tokenizer splits at spaces, so the simple format separates every piece with one; the real templates are exact strings.
        return string.Join(Template == ChatTemplate.Simple ? " " : "", parts);
    }

    /// <summary>Ids of <see cref="RenderPrompt"/>, ready for generation.</summary>
    public int[] EncodePrompt(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        Parts(messages, addGenerationPrompt)
            .SelectMany(p => p.Special is { } special ? new[] { SpecialId(special) } : Tokenizer.Encode(p.Lead + p.Body))
            .ToArray();

    IEnumerable<string> RequiredSpecials() => Template switch
    {
        ChatTemplate.Simple => new[] { "<bos>", "<system>", "<user>", "<assistant>", "<eos>" },
        ChatTemplate.Llama3 => new[] { "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>" },
        _ => new[] { "<|im_start|>", "<|im_end|>" },
    };

    List<Part> Parts(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        if (messages.Count == 0 && !addGenerationPrompt) throw new ArgumentException("a conversation needs at least one message", nameof(messages));
        var parts = new List<Part>();
        switch (Template)
        {
            case ChatTemplate.Simple:
                parts.Add(new Part("<bos>", "", "", false));
                foreach (var m in messages)
                {
                    var trained = m.Role == ChatRole.Assistant;
                    parts.Add(new Part(SimpleRoleToken(m.Role), "", "", false));
                    parts.Add(new Part(null, "", m.Content, trained));
                    if (trained) parts.Add(new Part("<eos>", "", "", true));
                }
                if (addGenerationPrompt) parts.Add(new Part("<assistant>", "", "", false));
                break;

            case ChatTemplate.Llama3:
                parts.Add(new Part("<|begin_of_text|>", "", "", false));
                foreach (var m in messages)
                {
                    var trained = m.Role == ChatRole.Assistant;
                    AddLlama3Header(parts, m.Role);
                    // The reference template trims message content.
                    parts.Add(new Part(null, "\n\n", m.Content.Trim(), trained));
                    parts.Add(new Part("<|eot_id|>", "", "", trained));
                }
                if (addGenerationPrompt)
                {
                    AddLlama3Header(parts, ChatRole.Assistant);
                    parts.Add(new Part(null, "\n\n", "", false));
                }
                break;

            default:
                var withSystem = messages.Count > 0 && messages[0].Role == ChatRole.System
                    ? messages
                    : messages.Prepend(ChatMessage.System(Qwen2DefaultSystem)).ToList();
                foreach (var m in withSystem)
                {
                    var trained = m.Role == ChatRole.Assistant;
                    parts.Add(new Part("<|im_start|>", "", "", false));
                    parts.Add(new Part(null, RoleName(m.Role) + "\n", m.Content, trained));
                    parts.Add(new Part("<|im_end|>", "", "", trained));
                    parts.Add(new Part(null, "\n", "", false));
                }
                if (addGenerationPrompt)
                {
                    parts.Add(new Part("<|im_start|>", "", "", false));
                    parts.Add(new Part(null, "assistant\n", "", false));
                }
                break;
        }
        return parts;
    }

    static void AddLlama3Header(List<Part> parts, ChatRole role)
    {
        parts.Add(new Part("<|start_header_id|>", "", "", false));
        parts.Add(new Part(null, RoleName(role), "", false));
        parts.Add(new Part("<|end_header_id|>", "", "", false));
    }

    static string SimpleRoleToken(ChatRole role) => role switch
    {
        ChatRole.System => "<system>",
        ChatRole.User => "<user>",
        _ => "<assistant>",
    };

    public static string RoleName(ChatRole role) => role switch
    {
        ChatRole.System => "system",
        ChatRole.User => "user",
        _ => "assistant",
    };

    int SpecialId(string token) =>
        Tokenizer.TokenToId(token) ?? throw new InvalidOperationException($"the tokenizer has no {token} token, which the {Template} chat template needs");

    IEnumerable<int> OptionalId(string token) => Tokenizer.TokenToId(token) is { } id ? new[] { id } : Array.Empty<int>();
}
