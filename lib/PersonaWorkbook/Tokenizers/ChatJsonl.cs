using System.Text;
using System.Text.Json;
using PersonaWorkbook.Checkpoints;

namespace PersonaWorkbook.Tokenizers;

/// <summary>OpenAI fine-tuning JSONL: one <c>{"messages":[{"role":…,"content":…}, …]}</c> conversation per line.</summary>
public static class ChatJsonl
{
    /// <summary>Every conversation in the file; blank lines are skipped. Errors name the file and the 1-based line.</summary>
    public static IReadOnlyList<IReadOnlyList<ChatMessage>> Read(string path) => ReadNumbered(path).Select(c => c.Messages).ToList();

    /// <summary>
    /// <see cref="Read"/> for fine-tuning data: at least one conversation, and an assistant message in each (the targets);
    /// errors name the file and the line.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<ChatMessage>> ReadTrainable(string path)
    {
        var numbered = ReadNumbered(path);
        if (numbered.Count == 0) throw new InvalidDataException($"{path}: no conversations");
        foreach (var (messages, line) in numbered)
            if (messages.All(m => m.Role != ChatRole.Assistant)) throw new InvalidDataException($"{path}:{line}: no assistant message to train on");
        return numbered.Select(c => c.Messages).ToList();
    }

    static List<(IReadOnlyList<ChatMessage> Messages, int Line)> ReadNumbered(string path)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"chat JSONL file not found: {path}");
        var conversations = new List<(IReadOnlyList<ChatMessage>, int)>();
        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            conversations.Add((ParseLine(line, $"{path}:{lineNumber}"), lineNumber));
        }
        return conversations;
    }

    static List<ChatMessage> ParseLine(string line, string where)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{where}: malformed JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("messages", out var list) || list.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{where}: expected an object with a \"messages\" array");
            var messages = new List<ChatMessage>();
            var index = 0;
            foreach (var message in list.EnumerateArray())
            {
                if (message.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException($"{where}: messages[{index}] is not an object");
                var roleName = message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
                var role = roleName switch
                {
                    "system" => ChatRole.System,
                    "user" => ChatRole.User,
                    "assistant" => ChatRole.Assistant,
                    _ => throw new InvalidDataException($"{where}: messages[{index}].role is {(roleName is null ? "missing" : $"\"{roleName}\"")}, expected system, user or assistant"),
                };
                if (!message.TryGetProperty("content", out var content))
                    throw new InvalidDataException($"{where}: messages[{index}] has no content");
                messages.Add(new ChatMessage(role, ContentText(content, $"{where}: messages[{index}].content")));
                index++;
            }
            if (messages.Count == 0) throw new InvalidDataException($"{where}: \"messages\" is empty");
            return messages;
        }
    }

    // A string, or the list-of-parts form whose text parts are joined.
    static string ContentText(JsonElement content, string where)
    {
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind == JsonValueKind.Array)
        {
            var text = new StringBuilder();
            foreach (var part in content.EnumerateArray())
            {
                if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.GetString() != "text"
                    || !part.TryGetProperty("text", out var value) || value.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"{where} has a part that is not {{\"type\":\"text\",\"text\":…}}");
                text.Append(value.GetString());
            }
            return text.ToString();
        }
        throw new InvalidDataException($"{where} is {content.ValueKind}, expected a string");
    }

    // Keeps <, > and non-ASCII text as written, so the file reads as the conversations do.
    static readonly JsonSerializerOptions Readable = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>One line of the format (no newline).</summary>
    public static string ToLine(IReadOnlyList<ChatMessage> conversation) =>
        JsonSerializer.Serialize(new { messages = conversation.Select(m => new { role = ChatFormat.RoleName(m.Role), content = m.Content }) }, Readable);

    /// <summary>Writes conversations in the same format, one per line, atomically.</summary>
    public static void Write(string path, IEnumerable<IReadOnlyList<ChatMessage>> conversations)
    {
        var text = new StringBuilder();
        foreach (var conversation in conversations) text.Append(ToLine(conversation)).Append('\n');
        AtomicFile.WriteAllText(path, text.ToString());
    }
}
