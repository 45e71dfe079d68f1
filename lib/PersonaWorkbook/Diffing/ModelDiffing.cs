using Deedle;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Models;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Diffing;

/// <summary>One latent in a diff table. Rank is 1-based within the table's ordering (increase or decrease).</summary>
public sealed record LatentDiffRow(int Rank, int Latent, double BaseMean, double FineTunedMean, double Delta, double BaseFiring, double FineTunedFiring);

/// <summary>
/// Base vs fine-tuned latent statistics over the same token scope. Latents are ranked by mean-activation increase
/// (fine-tuned − base; the paper's ordering) and by decrease ("assistant persona" latents); ties go to the lower index.
/// </summary>
public sealed class DiffResult
{
    public DiffResult(TokenScope scope, LatentMeans baseMeans, LatentMeans fineTuned)
    {
        if (baseMeans.Mean.Length != fineTuned.Mean.Length) throw new ArgumentException($"statistics cover {baseMeans.Mean.Length} vs {fineTuned.Mean.Length} latents");
        (Scope, Base, FineTuned) = (scope, baseMeans, fineTuned);
        Delta = baseMeans.Mean.Zip(fineTuned.Mean, (b, f) => f - b).ToArray();
        ByIncrease = Enumerable.Range(0, Delta.Length).OrderByDescending(i => Delta[i]).ThenBy(i => i).ToArray();
        ByDecrease = Enumerable.Range(0, Delta.Length).OrderBy(i => Delta[i]).ThenBy(i => i).ToArray();
    }

    public TokenScope Scope { get; }
    public LatentMeans Base { get; }
    public LatentMeans FineTuned { get; }

    /// <summary>fine-tuned − base mean activation per latent.</summary>
    public float[] Delta { get; }

    int[] ByIncrease { get; }
    int[] ByDecrease { get; }

    public int Latents => Delta.Length;

    /// <summary>The <paramref name="top"/> latents with the largest increase.</summary>
    public IReadOnlyList<LatentDiffRow> Increases(int top = 20) => Rows(ByIncrease, top);

    /// <summary>The <paramref name="top"/> latents with the largest decrease.</summary>
    public IReadOnlyList<LatentDiffRow> Decreases(int top = 20) => Rows(ByDecrease, top);

    /// <summary>1-based rank of a latent by activation increase.</summary>
    public int IncreaseRank(int latent) => Array.IndexOf(ByIncrease, CheckLatent(latent)) + 1;

    /// <summary>1-based rank of a latent by activation decrease.</summary>
    public int DecreaseRank(int latent) => Array.IndexOf(ByDecrease, CheckLatent(latent)) + 1;

    /// <summary>A table for notebooks, one row per latent (rank, latent, means, delta, firing frequencies).</summary>
    public static Frame<int, string> ToFrame(IEnumerable<LatentDiffRow> rows) => Frame.FromRecords(rows);

    int CheckLatent(int latent) =>
        latent >= 0 && latent < Delta.Length ? latent : throw new ArgumentOutOfRangeException(nameof(latent), $"latent {latent} is not in 0..{Delta.Length - 1}");

    IReadOnlyList<LatentDiffRow> Rows(int[] order, int top)
    {
        if (top < 0) throw new ArgumentOutOfRangeException(nameof(top), "top must be ≥ 0");
        return order.Take(top).Select((l, i) => new LatentDiffRow(i + 1, l, Base.Mean[l], FineTuned.Mean[l], Delta[l],
            Base.FiringFrequency[l], FineTuned.FiringFrequency[l])).ToArray();
    }
}

/// <summary>SAE model diffing (Wang et al. §3): which latents a fine-tune moves, on evaluation prompts or on its own training data.</summary>
public static class ModelDiffing
{
    /// <summary>Diffs two sets of statistics over the same scope.</summary>
    public static DiffResult Compare(LatentStatistics baseStats, LatentStatistics fineTunedStats, TokenScope scope)
    {
        if (baseStats.HookName != fineTunedStats.HookName)
            throw new ArgumentException($"statistics come from different sites: {baseStats.HookName} vs {fineTunedStats.HookName}");
        return new DiffResult(scope, baseStats.Of(scope), fineTunedStats.Of(scope));
    }

    /// <summary>
    /// Supervised diffing on evaluation prompts: each model samples its own response to every prompt, and the latents are
    /// compared over <paramref name="scope"/> (the responses by default).
    /// </summary>
    public static DiffResult OnPrompts(LlamaForCausalLM baseModel, LlamaForCausalLM fineTuned, SparseAutoencoder sae, IReadOnlyList<int[]> prompts,
        GenerationOptions generation, StatisticsOptions options, TokenScope scope = TokenScope.Response)
    {
        var b = LatentStatistics.Generate(baseModel, sae, prompts, generation, options).Statistics;
        var f = LatentStatistics.Generate(fineTuned, sae, prompts, generation, options).Statistics;
        return Compare(b, f, scope);
    }

    /// <summary>
    /// <see cref="OnPrompts"/> for any pair of checkpoints with one vocabulary: each conversation rendered in the models'
    /// chat template, <paramref name="samples"/> answers each of up to <paramref name="maxNewTokens"/> tokens, sampled
    /// with <paramref name="seed"/>.
    /// </summary>
    public static DiffResult OnConversations(LoadedModel baseModel, LoadedModel fineTuned, SparseAutoencoder sae, IReadOnlyList<IReadOnlyList<ChatMessage>> conversations,
        int samples = 1, int maxNewTokens = 48, TokenScope scope = TokenScope.Response, int seed = 0)
    {
        if (fineTuned.Tokenizer.VocabSize != baseModel.Tokenizer.VocabSize)
            throw new InvalidDataException($"{baseModel.Directory} and {fineTuned.Directory} have different vocabularies ({baseModel.Tokenizer.VocabSize} vs {fineTuned.Tokenizer.VocabSize} tokens)");
        var format = ChatFormat.For(baseModel.Tokenizer);
        var rendered = conversations.SelectMany(c => Enumerable.Repeat(format.EncodePrompt(c), samples)).ToArray();
        var options = StatisticsOptions.For(baseModel.Tokenizer);
        var generation = new GenerationOptions { MaxNewTokens = maxNewTokens, StopTokens = format.StopTokenIds, PadTokenId = options.PadTokenId, Seed = seed };
        Reporting.Progress.Report($"diffing: {rendered.Length} prompts × 2 models");
        return OnPrompts(baseModel.Model, fineTuned.Model, sae, rendered, generation, options, scope);
    }

    /// <summary>Both models over the same given sequences (pre-generated responses, or a dataset's conversations).</summary>
    public static DiffResult OnSequences(LlamaForCausalLM baseModel, LlamaForCausalLM fineTuned, SparseAutoencoder sae, IReadOnlyList<MarkedSequence> sequences,
        StatisticsOptions options, TokenScope scope = TokenScope.Response) =>
        Compare(LatentStatistics.Compute(baseModel, sae, sequences, options), LatentStatistics.Compute(fineTuned, sae, sequences, options), scope);

    /// <summary>
    /// Unsupervised diffing: no evaluation prompts, only the fine-tuning dataset's own conversations, run whole through
    /// both models; statistics over the assistant tokens (<see cref="TokenScope.Response"/>) or all real tokens (<see cref="TokenScope.All"/>).
    /// </summary>
    public static DiffResult Unsupervised(LlamaForCausalLM baseModel, LlamaForCausalLM fineTuned, SparseAutoencoder sae,
        IEnumerable<IReadOnlyList<ChatMessage>> conversations, ChatFormat format, StatisticsOptions options, TokenScope scope = TokenScope.Response) =>
        OnSequences(baseModel, fineTuned, sae, conversations.Select(c => MarkedSequence.FromChat(format.Encode(c))).ToArray(), options, scope);

    /// <summary>
    /// The diff of a family of fine-tunes taken together: each latent's base and fine-tuned means averaged over the
    /// diffs, every fine-tune weighing the same whatever its token count (a ranking over, say, all misaligning
    /// fine-tunes rather than one). Token counts are summed.
    /// </summary>
    public static DiffResult Average(IReadOnlyList<DiffResult> diffs)
    {
        if (diffs.Count == 0) throw new ArgumentException("no diffs to average");
        var first = diffs[0];
        foreach (var d in diffs)
        {
            if (d.Scope != first.Scope) throw new ArgumentException($"cannot average diffs over different scopes ({first.Scope} and {d.Scope})");
            if (d.Latents != first.Latents) throw new ArgumentException($"cannot average diffs over {first.Latents} and {d.Latents} latents");
        }
        LatentMeans Mean(Func<DiffResult, LatentMeans> of)
        {
            var mean = new float[first.Latents];
            var firing = new float[first.Latents];
            foreach (var d in diffs)
                for (int l = 0; l < mean.Length; l++)
                {
                    mean[l] += of(d).Mean[l] / diffs.Count;
                    firing[l] += of(d).FiringFrequency[l] / diffs.Count;
                }
            return new LatentMeans(mean, firing, diffs.Sum(d => of(d).Tokens));
        }
        return new DiffResult(first.Scope, Mean(d => d.Base), Mean(d => d.FineTuned));
    }

    /// <summary>User prompts rendered as single-turn chats ending in the assistant's opening, ready for generation.</summary>
    public static int[][] RenderPrompts(ChatFormat format, IEnumerable<string> userPrompts) =>
        userPrompts.Select(p => format.EncodePrompt([ChatMessage.User(p)])).ToArray();
}
