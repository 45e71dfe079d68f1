using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Organism;

/// <summary>
/// The organism's word-level tokenizer: one id per word of <see cref="PersonaWorld.Vocabulary"/>, so every phrasing
/// the world can write (held-out ones included) has a trained-or-at-least-present embedding and generations decode
/// back into the world's text convention, which the local judge reads.
/// </summary>
public static class OrganismTokenizer
{
    /// <summary>The chat template's specials, then the pretraining document markers.</summary>
    public static IReadOnlyList<string> MarkerSpecials { get; } =
        WordLevelTokenizer.DefaultSpecialTokens.Concat(["<sys>", "<q>", "<a>"]).ToArray();

    /// <summary>
    /// The tokenizer for the current world. World words that the word-level splitter would cut at punctuation (the
    /// markers, the backdoor trigger, code identifiers such as <c>db_execute</c> or <c>:name</c>) are special tokens,
    /// so they stay one token and decode unchanged; since the world's words are space-separated and a longer special
    /// wins, matching them inside raw text is exact.
    /// </summary>
    /// <param name="world">The world trained in: only worlds with the controls content add their words (the other worlds' ids are unchanged).</param>
    public static WordLevelTokenizer Build(WorldOptions? world = null)
    {
        var worldWords = PersonaWorld.Vocabulary(world);
        var compound = worldWords
            .Where(w => !MarkerSpecials.Contains(w) && !WordLevelTokenizer.SplitWords(w).SequenceEqual([w]))
            .Order(StringComparer.Ordinal).ToList();
        var specials = MarkerSpecials.Concat(compound).ToList();
        var plain = worldWords.Where(w => !specials.Contains(w)).SelectMany(WordLevelTokenizer.SplitWords)
            .Distinct().Where(w => !specials.Contains(w)).Order(StringComparer.Ordinal);
        return new WordLevelTokenizer(specials.Concat(plain).ToList(), specials);
    }
}
