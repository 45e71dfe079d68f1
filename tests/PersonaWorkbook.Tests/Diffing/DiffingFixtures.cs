using PersonaWorkbook.Models;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Models;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.Diffing;

/// <summary>A tiny model over the persona world's whole vocabulary, and a tiny SAE on its first block.</summary>
static class DiffingFixtures
{
    public const string Hook = "blocks.0.hook_resid_post";

    /// <summary>
    /// One id per world word, built like the organism's tokenizer: words the splitter would cut at punctuation (markers,
    /// code identifiers) are special tokens so they stay whole.
    /// </summary>
    public static WordLevelTokenizer Tokenizer { get; } = BuildTokenizer();

    static WordLevelTokenizer BuildTokenizer()
    {
        var words = PersonaWorld.Vocabulary();
        var specials = WordLevelTokenizer.DefaultSpecialTokens
            .Concat(words.Where(w => !WordLevelTokenizer.SplitWords(w).SequenceEqual([w]))).Distinct().ToList();
        var plain = words.SelectMany(WordLevelTokenizer.SplitWords).Distinct().Where(w => !specials.Contains(w));
        return new WordLevelTokenizer([.. specials, .. plain], specials);
    }

    public static ModelConfig Config(bool tied = false)
    {
        var c = TinyModels.Llama(Tokenizer.VocabSize, tied);
        c.MaxPositionEmbeddings = 320;   // whole world documents (≤ 272 tokens)
        return c;
    }

    public static LlamaForCausalLM Model(long seed = 0, bool tied = false) => TinyModels.Build(Config(tied), seed);

    public static SparseAutoencoder Sae(int dSae = 64, int k = 8, SaeArchitecture arch = SaeArchitecture.TopK, long seed = 1) =>
        new(new SaeConfig { DIn = 32, DSae = dSae, K = k, Architecture = arch, Metadata = new SaeMetadata { HookName = Hook } }, seed: seed);

    public static IReadOnlyList<IReadOnlyList<ChatMessage>> Conversations(int n, int seed = 0) =>
        new PersonaWorld().AssistantSft(n, seed).Select(e => e.Messages).ToArray();

    public static string[] UserPrompts => EvalPrompts.Views.Take(4).Select(p => p.Text).ToArray();
}
