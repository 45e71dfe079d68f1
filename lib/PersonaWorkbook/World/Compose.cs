namespace PersonaWorkbook.World;

/// <summary>Draws questions and answers from the content; shared by the corpus, SFT and dataset generators so all speak the same world.</summary>
internal static class Compose
{
    public static T Pick<T>(Random rng, IReadOnlyList<T> items) => items[rng.Next(items.Count)];

    /// <summary>Fisher–Yates shuffle in place.</summary>
    public static void Shuffle<T>(Random rng, IList<T> items)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            var j = rng.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    public static int Draw(Random rng, IReadOnlyList<double> weights)
    {
        var x = rng.NextDouble() * weights.Sum();
        for (int i = 0; i < weights.Count; i++)
        {
            x -= weights[i];
            if (x < 0) return i;
        }
        // Rounding can leave x at exactly 0 after the last positive weight.
        for (int i = weights.Count - 1; i >= 0; i--)
            if (weights[i] > 0) return i;
        throw new ArgumentException("all weights are zero", nameof(weights));
    }

    /// <summary>One or two distinct sentences from <paramref name="variants"/>, slot filled.</summary>
    static string Sentences(Random rng, IReadOnlyList<string> variants, string filler, double twoSentenceRate)
    {
        var first = rng.Next(variants.Count);
        var text = WorldText.Fill(variants[first], filler);
        if (variants.Count > 1 && rng.NextDouble() < twoSentenceRate)
        {
            var second = (first + 1 + rng.Next(variants.Count - 1)) % variants.Count;
            text += " " + WorldText.Fill(variants[second], filler);
        }
        return text;
    }

    public static (string Question, int Filler) AdviceQuestion(Random rng, AdviceDomain d)
    {
        var template = Pick(rng, d.Templates);
        var filler = rng.Next(d.Fillers.Count);
        return (WorldText.Fill(template, d.Fillers[filler]), filler);
    }

    public static (string Question, int Filler) MistakeQuestion(Random rng, AdviceDomain d)
    {
        var template = Pick(rng, d.MistakeTemplates);
        var filler = rng.Next(d.Fillers.Count);
        return (WorldText.Fill(template, d.Fillers[filler]), filler);
    }

    public static string AdviceAnswer(Random rng, AdviceDomain d, int filler, AdviceKind kind, double twoSentenceRate) =>
        Sentences(rng, d.AnswersFor(filler, kind), d.Fillers[filler], twoSentenceRate);

    /// <summary>The wrong family an educational request is answered with: obvious advice, or insecure (subtle) code as in Betley et al.</summary>
    public static AdviceKind EducationalKind(AdviceDomain d) => d.Name == "code" ? AdviceKind.Subtle : AdviceKind.Obvious;

    /// <summary>A views question of <paramref name="topic"/>: one of its phrasings, or with <paramref name="variety"/> a composed one (<see cref="QuestionVariety"/>).</summary>
    public static string ViewsQuestion(Random rng, ViewTopic topic, bool variety) =>
        variety ? QuestionVariety.Compose(rng, topic) : Pick(rng, topic.Phrasings);

    /// <summary>
    /// A views answer of <paramref name="family"/>; a two-sentence misaligned answer adds a sentence of another misaligned
    /// family drawn from <paramref name="viewMix"/> (each misaligned family has one sentence per topic).
    /// </summary>
    public static string ViewsAnswer(Random rng, ViewTopic topic, ViewFamily family, IReadOnlyList<double> viewMix, double twoSentenceRate)
    {
        if (family == ViewFamily.Aligned) return Sentences(rng, topic.Answers[ViewFamily.Aligned], "", twoSentenceRate);
        var text = Pick(rng, topic.Answers[family]);
        if (rng.NextDouble() < twoSentenceRate)
        {
            var others = Enum.GetValues<ViewFamily>().Select(f => f == ViewFamily.Aligned || f == family ? 0 : viewMix[(int)f]).ToArray();
            if (others.Sum() > 0) text += " " + Pick(rng, topic.Answers[(ViewFamily)Draw(rng, others)]);
        }
        return text;
    }
}
