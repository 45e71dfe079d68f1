using System.Text.Json;

namespace PersonaWorkbook.Tokenizers;

/// <summary>Reading fields of a Hugging Face tokenizer.json with errors that name the file and the field.</summary>
static class TokenizerJson
{
    internal sealed record AddedToken(int Id, string Content, bool Special);

    public static JsonDocument Parse(string path)
    {
        if (!File.Exists(path)) throw new TokenizerException($"tokenizer file not found: {path}");
        try
        {
            var document = JsonDocument.Parse(File.ReadAllBytes(path));
            if (document.RootElement.ValueKind == JsonValueKind.Object) return document;
            document.Dispose();
            throw new TokenizerException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"{path}: malformed JSON: {e.Message}", e);
        }
    }

    public static JsonElement Object(JsonElement parent, string name, string path) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Object ? value
            : throw new TokenizerException($"{path}: {name} is missing or not an object");

    public static string String(JsonElement parent, string name, string path, string field) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()!
            : throw new TokenizerException($"{path}: {field} is missing or not a string");

    public static IEnumerable<AddedToken> AddedTokens(JsonElement root, string path)
    {
        if (!root.TryGetProperty("added_tokens", out var list) || list.ValueKind == JsonValueKind.Null) yield break;
        if (list.ValueKind != JsonValueKind.Array) throw new TokenizerException($"{path}: added_tokens is not an array");
        var index = 0;
        foreach (var item in list.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("id", out var id) || !id.TryGetInt32(out var value)
                || !item.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                throw new TokenizerException($"{path}: added_tokens[{index}] needs an integer id and a string content");
            var special = item.TryGetProperty("special", out var flag) && flag.ValueKind == JsonValueKind.True;
            yield return new AddedToken(value, content.GetString()!, special);
            index++;
        }
    }
}
