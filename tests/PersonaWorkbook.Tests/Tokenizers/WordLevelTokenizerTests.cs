using System.Text.Json;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Tests.Tokenizers;

public class WordLevelTokenizerTests
{
    static readonly string[] Corpus =
    {
        "The cat sat. The cat ran!",
        "A dog sat, the dog ran.",
        "<q> Who sat? <a> The cat.",
    };

    static WordLevelTokenizer Trained() => WordLevelTokenizer.Train(Corpus, new[] { "<q>", "<a>", "<sys>" });

    [Fact]
    public void WordsAreLowerCasedAndPunctuationIsolated()
    {
        Assert.Equal(new[] { "hello", ",", "world", "." }, WordLevelTokenizer.SplitWords("Hello, world."));
        Assert.Equal(new[] { "don", "'", "t", "pay", "$", "5", "—", "ok", "?", "!" }, WordLevelTokenizer.SplitWords("Don't  pay\t$5—OK?!"));
    }

    [Fact]
    public void VocabularyIsSpecialsThenFrequencyThenOrdinal()
    {
        var tokenizer = Trained();
        var expected = WordLevelTokenizer.DefaultSpecialTokens.Concat(new[] { "<q>", "<a>", "<sys>" })
            // the:4 .:3 cat:3 sat:3 ran:2 dog:2, then the count-1 words in ordinal order
            .Concat(new[] { "the", ".", "cat", "sat", "dog", "ran", "!", ",", "?", "a", "who" });
        Assert.Equal(expected, tokenizer.Vocabulary);
        Assert.Equal(10, tokenizer.SpecialTokens.Count);
        Assert.Null(tokenizer.TokenToId("q"));

        var capped = WordLevelTokenizer.Train(Corpus, new[] { "<q>" }, minFrequency: 2, maxVocab: 11);
        Assert.Equal(new[] { "the", ".", "cat" }, capped.Vocabulary.Skip(8));
        Assert.Throws<ArgumentOutOfRangeException>(() => WordLevelTokenizer.Train(Corpus, null, maxVocab: 3));
    }

    [Fact]
    public void EncodeDecodeRoundTripsNormalisedText()
    {
        var tokenizer = Trained();
        var ids = tokenizer.Encode("The cat sat, the dog ran!");
        Assert.Equal(8, ids.Length);
        Assert.Equal("the cat sat , the dog ran !", tokenizer.Decode(ids));
        Assert.Equal(ids, tokenizer.Encode(tokenizer.Decode(ids)));
    }

    [Fact]
    public void UnknownWordsBecomeUnk()
    {
        var tokenizer = Trained();
        var ids = tokenizer.Encode("the zebra sat");
        Assert.Equal(new[] { tokenizer.TokenToId("the")!.Value, tokenizer.UnkId, tokenizer.TokenToId("sat")!.Value }, ids);
        Assert.Equal("<unk>", tokenizer.IdToToken(tokenizer.UnkId));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.IdToToken(tokenizer.VocabSize));
    }

    [Fact]
    public void SpecialTokensMatchAnywhereAndCanBeSkipped()
    {
        var tokenizer = Trained();
        var ids = tokenizer.Encode("<bos><user>The cat?<assistant> sat<eos>");
        var expected = new[] { "<bos>", "<user>", "the", "cat", "?", "<assistant>", "sat", "<eos>" }.Select(t => tokenizer.TokenToId(t)!.Value);
        Assert.Equal(expected, ids);
        Assert.Equal(0, tokenizer.PadId);
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal(2, tokenizer.EosId);
        Assert.Equal("the cat ? sat", tokenizer.Decode(ids, skipSpecial: true));
        // Matched verbatim, before lower-casing, as Hugging Face does for non-normalized added tokens: "<BOS>" is the words < bos >.
        Assert.Equal(new[] { tokenizer.UnkId, tokenizer.UnkId, tokenizer.UnkId }, tokenizer.Encode("<BOS>"));
    }

    [Fact]
    public void SavedTokenizerJsonReloadsWithTheSameBehaviour()
    {
        using var dir = new TempDirectory();
        var tokenizer = Trained();
        var path = dir.File("tokenizer.json");
        tokenizer.Save(path);

        var json = JsonDocument.Parse(File.ReadAllText(path)).RootElement;
        Assert.Equal("1.0", json.GetProperty("version").GetString());
        Assert.Equal("WordLevel", json.GetProperty("model").GetProperty("type").GetString());
        Assert.Equal("<unk>", json.GetProperty("model").GetProperty("unk_token").GetString());
        Assert.Equal(tokenizer.VocabSize, json.GetProperty("model").GetProperty("vocab").EnumerateObject().Count());
        Assert.Equal("Lowercase", json.GetProperty("normalizer").GetProperty("type").GetString());
        var firstAdded = json.GetProperty("added_tokens")[0];
        Assert.Equal("<pad>", firstAdded.GetProperty("content").GetString());
        Assert.True(firstAdded.GetProperty("special").GetBoolean());
        Assert.False(firstAdded.GetProperty("normalized").GetBoolean());

        var text = "<bos><q> Who ran? <a> A cat, the DOG. <eos> zebra";
        foreach (var reloaded in new ITokenizer[] { WordLevelTokenizer.Load(path), HfTokenizer.Load(path) })
        {
            Assert.IsType<WordLevelTokenizer>(reloaded);
            Assert.Equal(tokenizer.Encode(text), reloaded.Encode(text));
            Assert.Equal(tokenizer.SpecialTokens, reloaded.SpecialTokens);
            Assert.Equal(tokenizer.VocabSize, reloaded.VocabSize);
            Assert.Equal(tokenizer.Vocabulary, ((WordLevelTokenizer)reloaded).Vocabulary);
        }
    }

    [Fact]
    public void TokenizerJsonWithOtherBehaviourIsRejectedNamingFileAndField()
    {
        using var dir = new TempDirectory();
        var path = dir.File("tokenizer.json");
        Trained().Save(path);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"WhitespaceSplit\"", "\"Whitespace\""));
        var message = Assert.Throws<TokenizerException>(() => WordLevelTokenizer.Load(path)).Message;
        Assert.Contains(path, message);
        Assert.Contains("pre_tokenizer", message);

        File.WriteAllText(path, "{\"model\": {\"type\": \"Unigram\"}}");
        Assert.Contains("model.type Unigram is not supported", Assert.Throws<TokenizerException>(() => HfTokenizer.Load(path)).Message);
        File.WriteAllText(path, "{\"model\": ");
        Assert.Contains("malformed JSON", Assert.Throws<TokenizerException>(() => HfTokenizer.Load(path)).Message);
    }
}
