using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Tokenizers;
using PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Tests.Models;

/// <summary>
/// Tiny checkpoints in Hugging Face layout as a user brings them: random weights, a byte-level BPE tokenizer.json with
/// the chat template's special tokens (ChatML for Qwen2, Llama-3's headers for Llama), a context of 512.
/// </summary>
static class TinyHfCheckpoints
{
    public static string Write(TempDirectory dir, bool qwen, long seed = 5)
    {
        var name = qwen ? "qwen" : "llama";
        var tokenizerJson = TinyBpe.Write(dir.File($"{name}-tokenizer.json"), qwen ? TinyBpe.Qwen2Added : TinyBpe.Llama3Added);
        var config = qwen ? TinyModels.Qwen2(vocab: 310) : TinyModels.Llama(vocab: 310);
        config.MaxPositionEmbeddings = 512;
        using var model = TinyModels.Build(config, seed);
        var path = dir.File(name);
        ModelCheckpoint.Save(path, model, HfTokenizer.Load(tokenizerJson), tokenizerJson);
        return path;
    }

    /// <summary>An SAE corpus for them: 200 lines of ten words from the tokenizer's vocabulary.</summary>
    public static string WriteCorpus(TempDirectory dir)
    {
        var corpus = dir.File("corpus.txt");
        string[] words = ["hello", "world", "the", "xyz"];
        File.WriteAllLines(corpus, Enumerable.Range(0, 200).Select(i => string.Join(' ', Enumerable.Range(0, 10).Select(j => words[(i * 7 + j * 3) % 4]))));
        return corpus;
    }
}
