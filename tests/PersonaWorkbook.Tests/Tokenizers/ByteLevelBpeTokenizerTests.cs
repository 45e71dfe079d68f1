using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Tests.Tokenizers;

public class ByteLevelBpeTokenizerTests
{
    static readonly Dictionary<string, int> Vocab = TinyBpe.Vocab();

    static int Id(string token) => Vocab[token];

    [Fact]
    public void MergesApplyWithinEachPreToken()
    {
        using var dir = new TempDirectory();
        var tokenizer = HfTokenizer.Load(TinyBpe.Write(dir.File("tokenizer.json"), TinyBpe.Llama3Added));
        Assert.IsType<ByteLevelBpeTokenizer>(tokenizer);

        Assert.Equal(new[] { Id("hello"), Id("Ġworld") }, tokenizer.Encode("hello world"));
        // No "he l" merge: "held" stops at he + l + d.
        Assert.Equal(new[] { Id("he"), Id("l"), Id("d") }, tokenizer.Encode("held"));
        // "Ġthe" then the pre-tokenizer isolates "," from " world".
        Assert.Equal(new[] { Id("Ġthe"), Id(","), Id("Ġworld") }, tokenizer.Encode(" the, world"));
        // ignore_merges: a pre-token that is itself in the vocabulary is one token even though no merge builds it.
        Assert.Equal(new[] { TinyBpe.XyzId }, tokenizer.Encode(" xyz"));
        Assert.Equal(new[] { Id("ĊĊ") }, tokenizer.Encode("\n\n"));
    }

    [Fact]
    public void MergesWrittenAsStringsLoadTheSame()
    {
        using var dir = new TempDirectory();
        var pairs = HfTokenizer.Load(TinyBpe.Write(dir.File("a.json"), TinyBpe.Llama3Added));
        var strings = HfTokenizer.Load(TinyBpe.Write(dir.File("b.json"), TinyBpe.Llama3Added, stringMerges: true));
        const string text = "hello world, the held xyz!";
        Assert.Equal(pairs.Encode(text), strings.Encode(text));
    }

    [Fact]
    public void BytesRoundTripThroughEncodeAndDecode()
    {
        using var dir = new TempDirectory();
        var tokenizer = HfTokenizer.Load(TinyBpe.Write(dir.File("tokenizer.json"), TinyBpe.Llama3Added));
        const string text = "héllo wörld!\n\n  the 12345 😀 end";
        var ids = tokenizer.Encode(text);
        Assert.Equal(text, tokenizer.Decode(ids));
        // é is two UTF-8 bytes, each its own byte symbol here.
        Assert.Equal(new[] { Id("h"), Id("Ã"), Id("©") }, tokenizer.Encode("hé"));
    }

    [Fact]
    public void AddedTokensAreAtomicAndSkippable()
    {
        using var dir = new TempDirectory();
        var tokenizer = HfTokenizer.Load(TinyBpe.Write(dir.File("tokenizer.json"), TinyBpe.Llama3Added));
        var ids = tokenizer.Encode("<|begin_of_text|>hello<|eot_id|> world");
        Assert.Equal(new[] { 300, Id("hello"), 304, Id("Ġworld") }, ids);
        Assert.Equal("<|begin_of_text|>hello<|eot_id|> world", tokenizer.Decode(ids));
        Assert.Equal("hello world", tokenizer.Decode(ids, skipSpecial: true));
        // Ids past the vocabulary (a checkpoint's padded embedding rows, or a hole) decode to nothing, as in HF tokenizers.
        Assert.Equal("hello world", tokenizer.Decode([Id("hello"), 288, 9_999, Id("Ġworld")]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.IdToToken(288));
        Assert.Equal(305, tokenizer.VocabSize);
        Assert.Equal(304, tokenizer.TokenToId("<|eot_id|>"));
        Assert.Equal("<|eot_id|>", tokenizer.IdToToken(304));
        Assert.Equal("Ġworld", tokenizer.IdToToken(Id("Ġworld")));
        Assert.Equal(TinyBpe.Llama3Added, tokenizer.SpecialTokens);
        Assert.Equal(300, tokenizer.BosId);
        Assert.Equal(301, tokenizer.EosId);
        Assert.Equal(-1, tokenizer.UnkId);
    }

    [Fact]
    public void TokenizerConfigBesideTheFileNamesBosAndEos()
    {
        using var dir = new TempDirectory();
        var path = TinyBpe.Write(dir.File("tokenizer.json"), TinyBpe.Llama3Added);
        File.WriteAllText(dir.File("tokenizer_config.json"),
            """{"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>"}, "pad_token": null}""");
        var tokenizer = HfTokenizer.Load(path);
        Assert.Equal(300, tokenizer.BosId);
        Assert.Equal(304, tokenizer.EosId);
        Assert.Equal(-1, tokenizer.PadId);
    }

    [Fact]
    public void NfcNormalizerComposesBeforeEncodingOrWarnsWhereTheRuntimeCannot()
    {
        using var dir = new TempDirectory();
        var path = TinyBpe.Write(dir.File("tokenizer.json"), TinyBpe.Qwen2Added, normalizer: "NFC");
        var lines = new List<string>();
        void Collect(string line) => lines.Add(line);
        Reporting.Progress.Reported += Collect;
        ITokenizer tokenizer;
        try { tokenizer = HfTokenizer.Load(path); }
        finally { Reporting.Progress.Reported -= Collect; }

        if (ByteLevelBpeTokenizer.RuntimeNormalizes)
            Assert.Equal(tokenizer.Encode("h\u00e9"), tokenizer.Encode("he\u0301"));
        else
            Assert.Contains(lines, l => l.Contains("NFC") && l.Contains(path));
        Assert.Equal("h\u00e9", tokenizer.Decode(tokenizer.Encode("h\u00e9")));
    }

    [Fact]
    public void UnsupportedPipelinesAreRejectedNamingTheFile()
    {
        using var dir = new TempDirectory();
        var path = TinyBpe.Write(dir.File("tokenizer.json"), TinyBpe.Llama3Added);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"byte_fallback\": false", "\"byte_fallback\": true"));
        var message = Assert.Throws<TokenizerException>(() => HfTokenizer.Load(path)).Message;
        Assert.Contains(path, message);
        Assert.Contains("byte_fallback", message);

        // A merge whose result is not in the vocabulary.
        var broken = TinyBpe.Write(dir.File("broken.json"), TinyBpe.Llama3Added, stringMerges: true);
        File.WriteAllText(broken, File.ReadAllText(broken).Replace("\"\\u0120worl d\"", "\"\\u0120worl q\""));
        Assert.Contains("does not load", Assert.Throws<TokenizerException>(() => HfTokenizer.Load(broken)).Message);
    }
}
