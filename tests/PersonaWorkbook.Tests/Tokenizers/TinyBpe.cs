using System.Text.Json;
using PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Tests.Tokenizers;

/// <summary>
/// A hand-made byte-level BPE tokenizer.json in the Llama-3 layout: the 256 byte symbols (ids 0–255, in byte order),
/// a dozen merges building "hello", " world", "he" and friends, one vocabulary word no merge reaches (" xyz"), and added tokens from id 300.
/// </summary>
static class TinyBpe
{
    public const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static readonly (string A, string B)[] Merges =
    {
        ("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("Ġwor", "l"), ("Ġworl", "d"),
        ("Ġ", "t"), ("Ġt", "he"), ("Ċ", "Ċ"),
    };

    public static readonly string[] Llama3Added =
        { "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>" };

    public static readonly string[] Qwen2Added = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" };

    public const int FirstAddedId = 300;
    public const int XyzId = 299;

    /// <summary>The vocabulary: byte symbols, then each merge's result in merge order, then "Ġxyz" at <see cref="XyzId"/>.</summary>
    public static Dictionary<string, int> Vocab()
    {
        var vocab = new Dictionary<string, int>();
        for (var b = 0; b < 256; b++) vocab[ByteLevel.Map((byte)b).ToString()] = b;
        foreach (var (a, b) in Merges) vocab[a + b] = vocab.Count;
        vocab["Ġxyz"] = XyzId;
        return vocab;
    }

    public static string Write(string path, string[] added, bool stringMerges = false, string? normalizer = null)
    {
        var document = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added.Select((content, i) => new Dictionary<string, object>
            {
                ["id"] = FirstAddedId + i, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            }),
            ["normalizer"] = normalizer is null ? null : new { type = normalizer },
            ["pre_tokenizer"] = new
            {
                type = "Sequence",
                pretokenizers = new object[]
                {
                    new { type = "Split", pattern = new { Regex = Llama3Pattern }, behavior = "Isolated", invert = false },
                    new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = false },
                },
            },
            ["post_processor"] = null,
            ["decoder"] = new { type = "ByteLevel", add_prefix_space = true, trim_offsets = true, use_regex = true },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = true,
                ["vocab"] = Vocab(),
                ["merges"] = stringMerges ? Merges.Select(m => $"{m.A} {m.B}").ToArray<object>() : Merges.Select(m => new[] { m.A, m.B }).ToArray<object>(),
            },
        };
        File.WriteAllText(path, JsonSerializer.Serialize(document, new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }
}
