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
            Encoder = JsonStringEscaper.Instance,
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

/// <summary>
/// Escapes what JSON requires and nothing more, as Python's json.dumps(ensure_ascii=False) does when Jupyter
/// saves a notebook: quote, backslash and control characters. Non-ASCII text, emoji and HTML stay as written,
/// so an edited notebook differs from Jupyter's own output only where it was edited.
/// </summary>
internal sealed class JsonStringEscaper : JavaScriptEncoder
{
    public static readonly JsonStringEscaper Instance = new();

    public override int MaxOutputCharactersPerInputCharacter => 6;  // \u00XX

    public override bool WillEncode(int unicodeScalar) => unicodeScalar < 0x20 || unicodeScalar is '"' or '\\';

    public override unsafe int FindFirstCharacterToEncode(char* text, int textLength)
    {
        for (int i = 0; i < textLength; i++)
            if (WillEncode(text[i])) return i;
        return -1;
    }

    public override unsafe bool TryEncodeUnicodeScalar(int unicodeScalar, char* buffer, int bufferLength, out int numberOfCharactersWritten)
    {
        var escaped = unicodeScalar switch
        {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\b' => "\\b",
            '\f' => "\\f",
            < 0x20 => $"\\u{unicodeScalar:x4}",
            _ => char.ConvertFromUtf32(unicodeScalar),
        };
        numberOfCharactersWritten = 0;
        if (escaped.Length > bufferLength) return false;
        for (int i = 0; i < escaped.Length; i++) buffer[i] = escaped[i];
        numberOfCharactersWritten = escaped.Length;
        return true;
    }
}
