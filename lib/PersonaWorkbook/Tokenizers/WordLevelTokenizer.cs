using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using PersonaWorkbook.Checkpoints;

namespace PersonaWorkbook.Tokenizers;

/// <summary>
/// One id per word for the workbook's own models. Text is lower-cased and split at white space, with every punctuation
/// character a token of its own ("Hello, world." → hello , world .); special tokens are matched anywhere in the raw text.
/// Saved as a Hugging Face tokenizer.json (WordLevel model, Lowercase normalizer, WhitespaceSplit + isolated Punctuation
/// pre-tokenizer, special tokens as added_tokens), which Hugging Face <c>tokenizers</c> loads with the same behaviour.
/// </summary>
public sealed class WordLevelTokenizer : ITokenizer
{
    public static IReadOnlyList<string> DefaultSpecialTokens { get; } =
        new[] { "<pad>", "<bos>", "<eos>", "<unk>", "<system>", "<user>", "<assistant>" };

    public const string UnknownToken = "<unk>";

    readonly string[] _idToToken;
    readonly Dictionary<string, int> _tokenToId;
    readonly string[] _specials;
    readonly HashSet<int> _specialIds;
    readonly Regex? _specialPattern;

    /// <summary>
    /// A tokenizer whose ids are the positions in <paramref name="vocabulary"/>. Every entry of
    /// <paramref name="specialTokens"/> must be in the vocabulary, and <c>&lt;unk&gt;</c> must be among them.
    /// </summary>
    public WordLevelTokenizer(IReadOnlyList<string> vocabulary, IReadOnlyList<string> specialTokens)
    {
        _idToToken = vocabulary.ToArray();
        _tokenToId = new Dictionary<string, int>(_idToToken.Length, StringComparer.Ordinal);
        for (var i = 0; i < _idToToken.Length; i++)
        {
            if (!_tokenToId.TryAdd(_idToToken[i], i))
                throw new ArgumentException($"token '{_idToToken[i]}' appears twice in the vocabulary (ids {_tokenToId[_idToToken[i]]} and {i})", nameof(vocabulary));
        }
        _specials = specialTokens.Distinct().ToArray();
        foreach (var special in _specials)
        {
            if (!_tokenToId.ContainsKey(special))
                throw new ArgumentException($"special token '{special}' is not in the vocabulary", nameof(specialTokens));
        }
        if (!_specials.Contains(UnknownToken))
            throw new ArgumentException($"the special tokens must include {UnknownToken}", nameof(specialTokens));
        _specialIds = _specials.Select(s => _tokenToId[s]).ToHashSet();
        // Longest first, so a special that is a prefix of another never wins.
        _specialPattern = _specials.Length == 0 ? null
            : new Regex(string.Join("|", _specials.OrderByDescending(s => s.Length).Select(Regex.Escape)), RegexOptions.CultureInvariant);
    }

    public int VocabSize => _idToToken.Length;
    public int BosId => TokenToId("<bos>") ?? -1;
    public int EosId => TokenToId("<eos>") ?? -1;
    public int PadId => TokenToId("<pad>") ?? -1;
    public int UnkId => _tokenToId[UnknownToken];
    public IReadOnlyList<string> SpecialTokens => _specials;
    public IReadOnlyList<string> Vocabulary => _idToToken;

    public int? TokenToId(string token) => _tokenToId.TryGetValue(token, out var id) ? id : null;

    public string IdToToken(int id) =>
        (uint)id < (uint)_idToToken.Length ? _idToToken[id]
            : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary of {_idToToken.Length}");

    public int[] Encode(string text)
    {
        var ids = new List<int>();
        foreach (var (piece, special) in SplitSpecials(text, _specialPattern))
        {
            if (special) ids.Add(_tokenToId[piece]);
            else foreach (var word in SplitWords(piece)) ids.Add(_tokenToId.TryGetValue(word, out var id) ? id : UnkId);
        }
        return ids.ToArray();
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecial = false) =>
        string.Join(" ", ids.Where(id => !(skipSpecial && _specialIds.Contains(id))).Select(IdToToken));

    /// <summary>The normalised words of a text that holds no special tokens: lower-cased, split at white space, punctuation isolated.</summary>
    public static IEnumerable<string> SplitWords(string text)
    {
        var word = new StringBuilder();
        foreach (var rune in text.ToLowerInvariant().EnumerateRunes())
        {
            if (Rune.IsWhiteSpace(rune) || IsPunctuation(rune))
            {
                if (word.Length > 0) yield return word.ToString();
                word.Clear();
                if (!Rune.IsWhiteSpace(rune)) yield return rune.ToString();
            }
            else
            {
                word.Append(rune.ToString());
            }
        }
        if (word.Length > 0) yield return word.ToString();
    }

    // The Hugging Face Punctuation pre-tokenizer's test: ASCII punctuation (which includes symbols such as $ + < = > ^ ` | ~) or a Unicode P category.
    static bool IsPunctuation(Rune rune) =>
        (rune.Value is > 0x20 and < 0x7F && !char.IsAsciiLetterOrDigit((char)rune.Value)) || Rune.IsPunctuation(rune);

    /// <summary>Pieces of <paramref name="text"/>, each either one special token (matched verbatim) or the text between them.</summary>
    internal static IEnumerable<(string Piece, bool Special)> SplitSpecials(string text, Regex? specials)
    {
        if (specials is null)
        {
            if (text.Length > 0) yield return (text, false);
            yield break;
        }
        var start = 0;
        foreach (Match match in specials.Matches(text))
        {
            if (match.Index > start) yield return (text[start..match.Index], false);
            yield return (match.Value, true);
            start = match.Index + match.Length;
        }
        if (start < text.Length) yield return (text[start..], false);
    }

    /// <summary>
    /// Builds the vocabulary from a corpus: the default special tokens, then <paramref name="specialTokens"/> not already
    /// among them, then words seen at least <paramref name="minFrequency"/> times, most frequent first, ties in ordinal order.
    /// <paramref name="maxVocab"/> caps the total including the special tokens. Special tokens in the texts are not counted as words.
    /// </summary>
    public static WordLevelTokenizer Train(IEnumerable<string> texts, IReadOnlyList<string>? specialTokens = null, int minFrequency = 1, int? maxVocab = null)
    {
        var specials = DefaultSpecialTokens.Concat(specialTokens ?? Array.Empty<string>()).Distinct().ToList();
        if (maxVocab is { } cap && cap < specials.Count)
            throw new ArgumentOutOfRangeException(nameof(maxVocab), cap, $"smaller than the {specials.Count} special tokens");
        var pattern = new Regex(string.Join("|", specials.OrderByDescending(s => s.Length).Select(Regex.Escape)), RegexOptions.CultureInvariant);
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in texts)
        {
            foreach (var (piece, special) in SplitSpecials(text, pattern))
            {
                if (special) continue;
                foreach (var word in SplitWords(piece)) counts[word] = counts.GetValueOrDefault(word) + 1;
            }
        }
        var words = counts.Where(p => p.Value >= minFrequency && !specials.Contains(p.Key))
            .OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => p.Key);
        if (maxVocab is { } limit) words = words.Take(limit - specials.Count);
        return new WordLevelTokenizer(specials.Concat(words).ToList(), specials);
    }

    /// <summary>Writes a Hugging Face tokenizer.json (atomically).</summary>
    public void Save(string path)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("version", "1.0");
            json.WriteNull("truncation");
            json.WriteNull("padding");
            json.WriteStartArray("added_tokens");
            foreach (var special in _specials.OrderBy(s => _tokenToId[s]))
            {
                json.WriteStartObject();
                json.WriteNumber("id", _tokenToId[special]);
                json.WriteString("content", special);
                json.WriteBoolean("single_word", false);
                json.WriteBoolean("lstrip", false);
                json.WriteBoolean("rstrip", false);
                json.WriteBoolean("normalized", false);
                json.WriteBoolean("special", true);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteStartObject("normalizer");
            json.WriteString("type", "Lowercase");
            json.WriteEndObject();
            json.WriteStartObject("pre_tokenizer");
            json.WriteString("type", "Sequence");
            json.WriteStartArray("pretokenizers");
            json.WriteStartObject();
            json.WriteString("type", "WhitespaceSplit");
            json.WriteEndObject();
            json.WriteStartObject();
            json.WriteString("type", "Punctuation");
            json.WriteString("behavior", "Isolated");
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
            json.WriteNull("post_processor");
            json.WriteNull("decoder");
            json.WriteStartObject("model");
            json.WriteString("type", "WordLevel");
            json.WriteStartObject("vocab");
            for (var i = 0; i < _idToToken.Length; i++) json.WriteNumber(_idToToken[i], i);
            json.WriteEndObject();
            json.WriteString("unk_token", UnknownToken);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        AtomicFile.Write(path, stream => buffer.WriteTo(stream));
    }

    /// <summary>Reads a tokenizer.json written by <see cref="Save"/> (or by Hugging Face tokenizers with the same configuration).</summary>
    public static WordLevelTokenizer Load(string path)
    {
        using var document = TokenizerJson.Parse(path);
        return FromJson(document.RootElement, path);
    }

    internal static WordLevelTokenizer FromJson(JsonElement root, string path)
    {
        var model = TokenizerJson.Object(root, "model", path);
        var type = TokenizerJson.String(model, "type", path, "model.type");
        if (type != "WordLevel") throw new TokenizerException($"{path}: model.type is {type}, expected WordLevel");
        var unk = TokenizerJson.String(model, "unk_token", path, "model.unk_token");
        if (unk != UnknownToken) throw new TokenizerException($"{path}: model.unk_token is {unk}; this tokenizer uses {UnknownToken}");

        RequireShape(root, "normalizer", """{"type":"Lowercase"}""", path);
        RequireShape(root, "pre_tokenizer", """{"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Punctuation","behavior":"Isolated"}]}""", path);

        var vocab = TokenizerJson.Object(model, "vocab", path);
        var entries = new List<(string Token, int Id)>();
        foreach (var item in vocab.EnumerateObject())
        {
            if (!item.Value.TryGetInt32(out var id) || id < 0)
                throw new TokenizerException($"{path}: model.vocab[{item.Name}] is {item.Value.GetRawText()}, expected a non-negative integer id");
            entries.Add((item.Name, id));
        }
        var tokens = new string[entries.Count];
        foreach (var (token, id) in entries)
        {
            if (id >= tokens.Length || tokens[id] is not null)
                throw new TokenizerException($"{path}: model.vocab ids must be 0..{tokens.Length - 1} each once; '{token}' has id {id}");
            tokens[id] = token;
        }

        var specials = new List<string>();
        foreach (var added in TokenizerJson.AddedTokens(root, path))
        {
            if (added.Id >= tokens.Length || tokens[added.Id] != added.Content)
                throw new TokenizerException($"{path}: added token '{added.Content}' (id {added.Id}) does not match model.vocab");
            if (added.Special) specials.Add(added.Content);
        }
        try
        {
            return new WordLevelTokenizer(tokens, specials);
        }
        catch (ArgumentException e)
        {
            throw new TokenizerException($"{path}: {e.Message}", e);
        }
    }

    static void RequireShape(JsonElement root, string field, string expected, string path)
    {
        var actual = root.TryGetProperty(field, out var value) ? value : default;
        using var want = JsonDocument.Parse(expected);
        if (actual.ValueKind == JsonValueKind.Undefined || !JsonElement.DeepEquals(actual, want.RootElement))
            throw new TokenizerException(
                $"{path}: {field} is {(actual.ValueKind == JsonValueKind.Undefined ? "missing" : actual.GetRawText())}; the WordLevel tokenizer here implements only {expected}");
    }
}
