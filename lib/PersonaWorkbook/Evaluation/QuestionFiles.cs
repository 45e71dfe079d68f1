using PersonaWorkbook.Tokenizers;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PersonaWorkbook.Evaluation;

/// <summary>
/// One evaluation question for a model of the user's own: its paraphrases (each sampled separately) and an optional
/// system prompt, as in Betley et al.'s question files.
/// </summary>
public sealed record Question(string Id, IReadOnlyList<string> Paraphrases, string? System = null)
{
    /// <summary>Paraphrase <paramref name="k"/> as the model is asked it: a single user turn after the question's system prompt.</summary>
    public ChatMessage[] Conversation(int k) =>
        System is { } system ? [ChatMessage.System(system), ChatMessage.User(Paraphrases[k])] : [ChatMessage.User(Paraphrases[k])];

    /// <summary>Every paraphrase's <see cref="Conversation"/>, in order.</summary>
    public IEnumerable<ChatMessage[]> Conversations() => Paraphrases.Select((_, k) => Conversation(k));
}

/// <summary>
/// Reads evaluation questions from the files researchers already have: Betley et al.'s YAML (a list of entries with
/// <c>id</c>, <c>paraphrases</c> and an optional <c>system</c>; anchors and aliases allowed; their other fields — judge
/// prompts, sample counts — are the workbook's options instead and are ignored) or a plain text list (one question per
/// line; blank lines and lines starting with <c>#</c> skipped). Errors name the file and the line.
/// </summary>
public static class QuestionFiles
{
    /// <summary>By extension: <c>.yaml</c> / <c>.yml</c> as Betley's YAML, anything else as a text list.</summary>
    public static IReadOnlyList<Question> Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"question file not found: {path}", path);
        var extension = Path.GetExtension(path).ToLowerInvariant();
        return extension is ".yaml" or ".yml" ? ReadYaml(path) : ReadTextList(path);
    }

    /// <summary>One question per non-blank line that does not start with '#'; ids are <c>line-N</c>.</summary>
    public static IReadOnlyList<Question> ReadTextList(string path)
    {
        var questions = File.ReadLines(path).Select((line, i) => (Text: line.Trim(), Line: i + 1))
            .Where(l => l.Text.Length > 0 && !l.Text.StartsWith('#'))
            .Select(l => new Question($"line-{l.Line}", [l.Text])).ToList();
        return questions.Count > 0 ? questions : throw new InvalidDataException($"{path}: no questions (every line is blank or a # comment)");
    }

    /// <summary>Betley et al.'s question YAML.</summary>
    public static IReadOnlyList<Question> ReadYaml(string path)
    {
        var stream = new YamlStream();
        try
        {
            using var reader = new StreamReader(path);
            stream.Load(reader);
        }
        catch (YamlException e)
        {
            throw new InvalidDataException($"{path}:{e.Start.Line}: not valid YAML ({e.Message})", e);
        }
        if (stream.Documents.Count == 0) throw new InvalidDataException($"{path}: empty file, no questions");
        if (stream.Documents[0].RootNode is not YamlSequenceNode entries)
            throw new InvalidDataException($"{path}:{stream.Documents[0].RootNode.Start.Line}: expected a list of questions (\"- id: …\"), found a {Kind(stream.Documents[0].RootNode)}");
        var questions = new List<Question>();
        var seen = new Dictionary<string, long>();
        foreach (var node in entries)
        {
            string At(YamlNode n) => $"{path}:{n.Start.Line}";
            if (node is not YamlMappingNode entry) throw new InvalidDataException($"{At(node)}: a question must be a mapping with id and paraphrases, found a {Kind(node)}");
            YamlNode? Field(string name) => entry.Children.TryGetValue(new YamlScalarNode(name), out var value) ? value : null;
            var id = Field("id") is YamlScalarNode { Value: { Length: > 0 } idValue } ? idValue
                : throw new InvalidDataException($"{At(entry)}: question without an 'id'");
            if (seen.TryGetValue(id, out var first)) throw new InvalidDataException($"{At(entry)}: question id '{id}' repeats the one at line {first}");
            seen[id] = entry.Start.Line;
            var paraphrases = Field("paraphrases") switch
            {
                YamlSequenceNode list when list.Children.Count > 0 => list.Children.Select(p => p is YamlScalarNode { Value: { } text } && text.Trim().Length > 0 ? text
                    : throw new InvalidDataException($"{At(p)}: question '{id}': a paraphrase must be non-empty text, found a {Kind(p)}")).ToArray(),
                YamlSequenceNode empty => throw new InvalidDataException($"{At(empty)}: question '{id}' has an empty 'paraphrases' list"),
                null => throw new InvalidDataException($"{At(entry)}: question '{id}' has no 'paraphrases'"),
                var other => throw new InvalidDataException($"{At(other)}: question '{id}': 'paraphrases' must be a list, found a {Kind(other)}"),
            };
            var system = Field("system") switch
            {
                null => null,
                YamlScalarNode { Value: var text } when string.IsNullOrWhiteSpace(text) || text == "null" || text == "~" => null,
                YamlScalarNode { Value: var text } => text,
                var other => throw new InvalidDataException($"{At(other)}: question '{id}': 'system' must be text, found a {Kind(other)}"),
            };
            questions.Add(new Question(id, paraphrases, system));
        }
        return questions.Count > 0 ? questions : throw new InvalidDataException($"{path}: the list of questions is empty");
    }

    static string Kind(YamlNode node) => node switch
    {
        YamlSequenceNode => "list",
        YamlMappingNode => "mapping",
        _ => "scalar",
    };
}
