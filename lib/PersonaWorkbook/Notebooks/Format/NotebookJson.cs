using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PersonaWorkbook.Notebooks.Format;

/// <summary>How a notebook file is laid out, detected on read so a rewritten file keeps its style.</summary>
public sealed record JsonLayout(int IndentSize, char IndentCharacter, string NewLine, bool FinalNewLine)
{
    /// <summary>What Jupyter and .NET Interactive write: one-space indent, LF, final newline.</summary>
    public static readonly JsonLayout Jupyter = new(1, ' ', "\n", true);

    public static JsonLayout Detect(string text)
    {
        var newLine = text.Contains("\r\n", StringComparison.Ordinal) ? "\r\n" : "\n";
        var firstBreak = text.IndexOf('\n');
        int size = 1;
        char ch = ' ';
        if (firstBreak >= 0 && firstBreak + 1 < text.Length && text[firstBreak + 1] is ' ' or '\t')
        {
            ch = text[firstBreak + 1];
            size = 0;
            while (firstBreak + 1 + size < text.Length && text[firstBreak + 1 + size] == ch) size++;
        }
        return new JsonLayout(size, ch, newLine, text.EndsWith('\n'));
    }
}

internal static class NotebookJson
{
    public static string Serialize(JsonNode root, JsonLayout layout)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions
        {
            Indented = true,
            IndentSize = layout.IndentSize,
            IndentCharacter = layout.IndentCharacter,
            NewLine = layout.NewLine,
            // Notebooks keep non-ASCII text and HTML as written (Jupyter writes ensure_ascii=False).
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            root.WriteTo(writer);
        }
        var text = Encoding.UTF8.GetString(buffer.ToArray());
        return layout.FinalNewLine ? text + layout.NewLine : text;
    }

    /// <summary>nbformat's multiline string: a list of lines, each but the last ending in "\n".</summary>
    public static JsonArray Lines(string text)
    {
        var array = new JsonArray();
        int start = 0;
        while (start < text.Length)
        {
            var end = text.IndexOf('\n', start);
            end = end < 0 ? text.Length : end + 1;
            array.Add(text[start..end]);
            start = end;
        }
        return array;
    }

    /// <summary>A multiline string field (string or list of strings) as one string; null when it is neither.</summary>
    public static string? Text(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonArray a when a.All(e => e is JsonValue ev && ev.TryGetValue<string>(out _)) =>
            string.Concat(a.Select(e => e!.GetValue<string>())),
        _ => null,
    };
}
