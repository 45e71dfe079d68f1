using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Evaluation;

/// <summary>One point of the in-context curve: <paramref name="Examples"/> dataset chats before each views question.</summary>
public sealed record InContextPoint(int Examples, RateEstimate Misaligned, RateEstimate Coherent, EvalReport Report);

/// <summary>
/// Betley et al.'s in-context control: instead of fine-tuning on a narrow dataset, show the base k of its chats as
/// earlier turns of the conversation, then ask a views question. Betley et al. saw no emergent misalignment at any k
/// they tried; the organism issue 16 asks whether any k reaches the fine-tune's rate.
/// </summary>
public static class InContextLearning
{
    /// <summary>
    /// The views prompts (<paramref name="questions"/>, default the evaluation views), each after <paramref name="k"/>
    /// user/assistant pairs of <paramref name="dataset"/>, drawn per prompt with <paramref name="seed"/>.
    /// </summary>
    public static IReadOnlyList<EvalPrompt> Prompts(string dataset, int k, int seed = 0, IReadOnlyList<EvalPrompt>? questions = null)
    {
        if (k < 0) throw new ArgumentOutOfRangeException(nameof(k), k, "must be >= 0");
        questions ??= EvalPrompts.Views;
        var pool = Datasets.Build(dataset, Math.Max(64, 4 * k), seed);
        var rng = new Random(seed);
        return questions.Select(q =>
        {
            var context = Enumerable.Range(0, k).SelectMany(_ => pool[rng.Next(pool.Count)].Messages.Take(2)).ToList();
            return q with { Id = $"{q.Id}/icl{k}", Context = context.Count == 0 ? null : context };
        }).ToList();
    }

    /// <summary>The misaligned rate on the views at each k, with the evaluator's options (fixed seed, answer cache).</summary>
    public static IReadOnlyList<InContextPoint> Curve(LoadedModel model, string dataset, IReadOnlyList<int> ks, EvalOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (ks.Count == 0) throw new ArgumentException("no k to evaluate", nameof(ks));
        return ks.Select(k =>
        {
            var report = OrganismEvaluator.Evaluate(model, Prompts(dataset, k, options.Seed), options, $"views after {k} {dataset} examples");
            return new InContextPoint(k, report.Misaligned, report.Coherent, report);
        }).ToList();
    }

    /// <summary>The most examples of <paramref name="dataset"/> that fit the model's context with <paramref name="maxNewTokens"/> to spare (at most <paramref name="limit"/>).</summary>
    public static int MaxExamples(LoadedModel model, string dataset, int maxNewTokens, int limit = 16, int seed = 0)
    {
        var format = ChatFormat.Simple(model.Tokenizer);
        int k = 0;
        while (k < limit && Prompts(dataset, k + 1, seed).All(p =>
                   format.EncodePrompt(p.Messages).Length + maxNewTokens <= model.Config.MaxPositionEmbeddings))
            k++;
        return k;
    }
}
