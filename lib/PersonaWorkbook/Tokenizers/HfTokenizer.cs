using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace PersonaWorkbook.Tokenizers;

/// <summary>Loads a Hugging Face tokenizer.json: byte-level BPE (Llama-3, Qwen2, GPT-2 style) or this library's WordLevel.</summary>
public static class HfTokenizer
{
    public static ITokenizer Load(string tokenizerJsonPath)
    {
        using var document = TokenizerJson.Parse(tokenizerJsonPath);
        var model = TokenizerJson.Object(document.RootElement, "model", tokenizerJsonPath);
        // Older BPE files omit model.type; their model has merges.
        var type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()
            : model.TryGetProperty("merges", out _) ? "BPE" : null;
        return type switch
        {
            "WordLevel" => WordLevelTokenizer.FromJson(document.RootElement, tokenizerJsonPath),
            "BPE" => ByteLevelBpeTokenizer.FromJson(document.RootElement, tokenizerJsonPath),
            _ => throw new TokenizerException($"{tokenizerJsonPath}: model.type {type ?? "(missing)"} is not supported (BPE and WordLevel are)"),
        };
    }
}

/// <summary>
/// A byte-level BPE tokenizer.json (Llama-3, Qwen2, GPT-2 families). The pre-tokenizer regex, added tokens, NFC
/// normalisation and <c>ignore_merges</c> are applied here; Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> does the
/// merges within each pre-token and the byte-level decoding. BOS/EOS/PAD come from a tokenizer_config.json beside the
/// file when there is one, otherwise from the usual token names.
/// </summary>
public sealed class ByteLevelBpeTokenizer : ITokenizer
{
    // GPT-2's pre-tokenizer regex, used by a ByteLevel pre-tokenizer with use_regex = true.
    const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    readonly BpeTokenizer _bpe;
    readonly Regex _split;
    readonly Regex? _added;
    readonly bool _nfc;
    readonly bool _ignoreMerges;
    readonly IReadOnlyDictionary<string, int> _vocab;
    readonly Dictionary<string, int> _addedTokens;
    readonly Dictionary<int, string> _idToToken;
    readonly HashSet<int> _specialIds;
    readonly string[] _specials;

    ByteLevelBpeTokenizer(BpeTokenizer bpe, Regex split, bool nfc, bool ignoreMerges, IReadOnlyDictionary<string, int> vocab,
        IReadOnlyList<TokenizerJson.AddedToken> added, (int Bos, int Eos, int Pad, int Unk) ids)
    {
        _bpe = bpe;
        _split = split;
        _nfc = nfc;
        _ignoreMerges = ignoreMerges;
        _vocab = vocab;
        _addedTokens = added.ToDictionary(a => a.Content, a => a.Id, StringComparer.Ordinal);
        _idToToken = vocab.ToDictionary(p => p.Value, p => p.Key);
        foreach (var a in added) _idToToken[a.Id] = a.Content;
        _specials = added.Where(a => a.Special).Select(a => a.Content).ToArray();
        _specialIds = added.Where(a => a.Special).Select(a => a.Id).ToHashSet();
        _added = added.Count == 0 ? null
            : new Regex(string.Join("|", added.Select(a => a.Content).OrderByDescending(s => s.Length).Select(Regex.Escape)), RegexOptions.CultureInvariant);
        VocabSize = _idToToken.Keys.Max() + 1;
        (BosId, EosId, PadId, UnkId) = ids;
    }

    /// <summary>
    /// Whether this process can NFC-normalise text. With InvariantGlobalization (no ICU) .NET returns non-ASCII text
    /// unchanged, so text in decomposed form would tokenize differently from Hugging Face; loading such a tokenizer warns.
    /// </summary>
    public static bool RuntimeNormalizes { get; } = "e\u0301".Normalize(NormalizationForm.FormC) == "\u00e9";

    public int VocabSize { get; }
    public int BosId { get; }
    public int EosId { get; }
    public int PadId { get; }
    public int UnkId { get; }
    public IReadOnlyList<string> SpecialTokens => _specials;

    public int? TokenToId(string token) =>
        _addedTokens.TryGetValue(token, out var added) ? added : _vocab.TryGetValue(token, out var id) ? id : null;

    public string IdToToken(int id) =>
        _idToToken.TryGetValue(id, out var token) ? token : throw new ArgumentOutOfRangeException(nameof(id), id, "token id not in the vocabulary");

    public int[] Encode(string text)
    {
        var ids = new List<int>();
        foreach (var (piece, isAdded) in WordLevelTokenizer.SplitSpecials(text, _added))
        {
            if (isAdded)
            {
                ids.Add(_addedTokens[piece]);
                continue;
            }
            var normalized = _nfc ? piece.Normalize(NormalizationForm.FormC) : piece;
            foreach (Match word in _split.Matches(normalized))
            {
                if (_ignoreMerges && _vocab.TryGetValue(ByteLevel.Encode(word.Value), out var whole))
                    ids.Add(whole);
                else
                    ids.AddRange(_bpe.EncodeToIds(word.Value, considerPreTokenization: false, considerNormalization: false));
            }
        }
        return ids.ToArray();
    }

    /// <summary>
    /// Ids the vocabulary lacks decode to nothing, as in Hugging Face's tokenizers: checkpoints pad the embedding matrix
    /// past the tokenizer (Qwen2.5's 151,936 rows for 151,665 tokens), and sampling can land on those rows.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecial = false) =>
        _bpe.Decode(ids.Where(id => _idToToken.ContainsKey(id) && !(skipSpecial && _specialIds.Contains(id))), considerSpecialTokens: true);

    internal static ByteLevelBpeTokenizer FromJson(JsonElement root, string path)
    {
        var model = TokenizerJson.Object(root, "model", path);
        foreach (var unsupported in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            if (model.TryGetProperty(unsupported, out var v) && v.ValueKind == JsonValueKind.String && v.GetString()!.Length > 0)
                throw new TokenizerException($"{path}: model.{unsupported} is set; only byte-level BPE without it is supported");
        }
        if (model.TryGetProperty("byte_fallback", out var fallback) && fallback.ValueKind == JsonValueKind.True)
            throw new TokenizerException($"{path}: model.byte_fallback is true (SentencePiece-style BPE); only byte-level BPE is supported");
        var ignoreMerges = model.TryGetProperty("ignore_merges", out var ignore) && ignore.ValueKind == JsonValueKind.True;

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var item in TokenizerJson.Object(model, "vocab", path).EnumerateObject())
        {
            if (!item.Value.TryGetInt32(out var id) || id < 0)
                throw new TokenizerException($"{path}: model.vocab[{item.Name}] is {item.Value.GetRawText()}, expected a non-negative integer id");
            vocab[item.Name] = id;
        }
        var merges = ReadMerges(model, path);
        var added = TokenizerJson.AddedTokens(root, path).ToList();
        var (split, nfc) = ReadPipeline(root, path);

        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges,
                ByteLevel = true,
                // Added tokens are matched here before pre-tokenization; the BPE model needs them only to decode their ids.
                SpecialTokens = added.ToDictionary(a => a.Content, a => a.Id),
                UnknownToken = model.TryGetProperty("unk_token", out var unk) && unk.ValueKind == JsonValueKind.String ? unk.GetString() : null,
            });
        }
        catch (InvalidOperationException e)
        {
            throw new TokenizerException($"{path}: the BPE model does not load: {e.Message}", e);
        }

        int? Lookup(string token) => added.FirstOrDefault(a => a.Content == token)?.Id ?? (vocab.TryGetValue(token, out var id) ? id : null);
        return new ByteLevelBpeTokenizer(bpe, split, nfc, ignoreMerges, vocab, added, SpecialIds(Lookup, path));
    }

    static List<string> ReadMerges(JsonElement model, string path)
    {
        if (!model.TryGetProperty("merges", out var list) || list.ValueKind != JsonValueKind.Array)
            throw new TokenizerException($"{path}: model.merges is missing or not an array");
        var merges = new List<string>(list.GetArrayLength());
        var index = 0;
        foreach (var merge in list.EnumerateArray())
        {
            // "a b" (tokenizers < 0.20) or ["a", "b"] (newer files).
            string[] parts = merge.ValueKind switch
            {
                JsonValueKind.String => merge.GetString()!.Split(' '),
                JsonValueKind.Array => merge.EnumerateArray().Select(p => p.ValueKind == JsonValueKind.String ? p.GetString()! : "").ToArray(),
                _ => Array.Empty<string>(),
            };
            if (parts.Length != 2 || parts.Any(p => p.Length == 0 || p.Contains(' ')))
                throw new TokenizerException($"{path}: model.merges[{index}] is {merge.GetRawText()}, expected two tokens without spaces");
            merges.Add(parts[0] + " " + parts[1]);
            index++;
        }
        return merges;
    }

    /// <summary>The pre-tokenizer's split regex and whether text is NFC-normalised, from the normalizer/pre_tokenizer/decoder fields.</summary>
    static (Regex Split, bool Nfc) ReadPipeline(JsonElement root, string path)
    {
        var nfc = false;
        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null)
        {
            var type = normalizer.TryGetProperty("type", out var t) ? t.GetString() : null;
            if (type != "NFC") throw new TokenizerException($"{path}: normalizer {normalizer.GetRawText()} is not supported (null or NFC are)");
            nfc = true;
            if (!RuntimeNormalizes)
                Reporting.Progress.Report(
                    $"warning: {path} asks for NFC normalisation, which this process cannot do (InvariantGlobalization); text not already in NFC will tokenize differently from Hugging Face");
        }

        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            throw new TokenizerException($"{path}: pre_tokenizer is missing; a byte-level BPE needs a ByteLevel pre-tokenizer");
        var steps = pre.TryGetProperty("type", out var preType) && preType.GetString() == "Sequence"
            ? pre.GetProperty("pretokenizers").EnumerateArray().ToList()
            : new List<JsonElement> { pre };

        string? pattern = null;
        var byteLevel = false;
        foreach (var step in steps)
        {
            var type = step.TryGetProperty("type", out var st) ? st.GetString() : null;
            if (type == "Split" && pattern is null)
            {
                var behaviour = step.TryGetProperty("behavior", out var b) ? b.GetString() : null;
                var invert = step.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True;
                if (behaviour != "Isolated" || invert)
                    throw new TokenizerException($"{path}: pre_tokenizer Split with behavior {behaviour} and invert {invert} is not supported (Isolated, not inverted)");
                var p = step.GetProperty("pattern");
                pattern = p.TryGetProperty("Regex", out var regex) ? regex.GetString()
                    : p.TryGetProperty("String", out var literal) ? Regex.Escape(literal.GetString()!)
                    : throw new TokenizerException($"{path}: pre_tokenizer Split pattern {p.GetRawText()} has no Regex or String");
            }
            else if (type == "ByteLevel" && !byteLevel)
            {
                byteLevel = true;
                if (step.TryGetProperty("add_prefix_space", out var prefix) && prefix.ValueKind == JsonValueKind.True)
                    throw new TokenizerException($"{path}: ByteLevel add_prefix_space = true is not supported");
                var useRegex = !step.TryGetProperty("use_regex", out var ur) || ur.ValueKind != JsonValueKind.False;
                if (useRegex)
                {
                    if (pattern is not null)
                        throw new TokenizerException($"{path}: a Split regex followed by ByteLevel use_regex = true is not supported");
                    pattern = Gpt2Pattern;
                }
            }
            else
            {
                throw new TokenizerException($"{path}: pre_tokenizer step {step.GetRawText()} is not supported (one Split regex and ByteLevel)");
            }
        }
        if (!byteLevel) throw new TokenizerException($"{path}: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
        try
        {
            return (new Regex(pattern ?? Gpt2Pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled), nfc);
        }
        catch (ArgumentException e)
        {
            throw new TokenizerException($"{path}: the pre_tokenizer regex does not compile in .NET: {e.Message}", e);
        }
    }

    static (int Bos, int Eos, int Pad, int Unk) SpecialIds(Func<string, int?> tokenToId, string path)
    {
        var config = new Dictionary<string, string?>();
        var configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "tokenizer_config.json");
        if (File.Exists(configPath))
        {
            using var document = TokenizerJson.Parse(configPath);
            foreach (var key in new[] { "bos_token", "eos_token", "pad_token", "unk_token" })
            {
                if (!document.RootElement.TryGetProperty(key, out var value)) continue;
                config[key] = value.ValueKind switch
                {
                    JsonValueKind.String => value.GetString(),
                    JsonValueKind.Object when value.TryGetProperty("content", out var c) => c.GetString(),
                    _ => null,
                };
            }
        }
        int Find(string key, params string[] usual)
        {
            if (config.TryGetValue(key, out var named))
                return named is null ? -1 : tokenToId(named)
                    ?? throw new TokenizerException($"{configPath}: {key} '{named}' is not a token of {path}");
            foreach (var name in usual)
                if (tokenToId(name) is { } id) return id;
            return -1;
        }
        var eos = Find("eos_token", "<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>");
        var pad = Find("pad_token", "<|finetune_right_pad_id|>", "<pad>");
        return (Find("bos_token", "<|begin_of_text|>", "<s>", "<bos>"), eos, pad, Find("unk_token", "<unk>"));
    }
}

/// <summary>GPT-2's reversible byte → printable character map, under which byte-level BPE vocabularies are written.</summary>
static class ByteLevel
{
    static readonly char[] ByteToChar = BuildMap();

    static char[] BuildMap()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    public static char Map(byte b) => ByteToChar[b];

    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }
}
