using PersonaWorkbook.Diffing;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Models;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Training;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Dashboards;

/// <summary>Builds <see cref="LatentDashboard"/>s by streaming a corpus of pretraining documents once, for any number of latents.</summary>
public static class LatentDashboards
{
    /// <summary>One latent's dashboard.</summary>
    public static LatentDashboard Build(LlamaForCausalLM model, ITokenizer tokenizer, SparseAutoencoder sae, int latent,
        IEnumerable<PretrainDocument> documents, DashboardOptions? options = null) =>
        Build(model, tokenizer, sae, [latent], documents, options)[0];

    /// <summary>
    /// Dashboards for several latents from one pass over <paramref name="documents"/> (each tokenized as
    /// <see cref="DocumentTokens"/>). Memory per latent is bounded by the top-K heap and the reservoir sample, whatever
    /// the corpus size. Control tokens (<see cref="StatisticsOptions.ControlTokenIds"/>) are not counted.
    /// </summary>
    public static IReadOnlyList<LatentDashboard> Build(LlamaForCausalLM model, ITokenizer tokenizer, SparseAutoencoder sae, IReadOnlyList<int> latents,
        IEnumerable<PretrainDocument> documents, DashboardOptions? options = null) =>
        Build(model, tokenizer, [(sae, latents)], documents, options)[0];

    /// <summary>
    /// Dashboards for latents of several SAEs at one site (e.g. the seeds of one layer's SAE) from one pass of the
    /// model over <paramref name="documents"/>: each SAE encodes the same captured activations, and each gets what a
    /// separate call would give (its own reservoir generator from <see cref="DashboardOptions.Seed"/>).
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<LatentDashboard>> Build(LlamaForCausalLM model, ITokenizer tokenizer,
        IReadOnlyList<(SparseAutoencoder Sae, IReadOnlyList<int> Latents)> requests, IEnumerable<PretrainDocument> documents, DashboardOptions? options = null)
    {
        var o = options ?? new DashboardOptions();
        o.Validate();
        if (requests.Count == 0) throw new ArgumentException("no SAEs given");
        foreach (var (sae, latents) in requests)
        {
            if (latents.Count == 0) throw new ArgumentException("no latents given");
            foreach (var l in latents)
                if (l < 0 || l >= sae.Config.DSae) throw new ArgumentOutOfRangeException(nameof(requests), $"latent {l} is not in 0..{sae.Config.DSae - 1}");
        }
        var statistics = new StatisticsOptions { HookName = o.HookName, PadTokenId = Math.Max(0, tokenizer.PadId), ExcludeTokenIds = StatisticsOptions.ControlTokenIds(tokenizer) };
        var hooks = requests.Select(r => statistics.Hook(model, r.Sae)).Distinct().ToArray();
        if (hooks.Length > 1) throw new ArgumentException($"the SAEs read different sites ({string.Join(", ", hooks)}); one pass serves SAEs of one site");
        var hook = hooks[0];
        var context = o.ContextLength ?? model.Config.MaxPositionEmbeddings;
        var device = model.parameters().First().device;
        var states = requests.Select(r =>
        {
            var rng = new Random((int)o.Seed);
            return r.Latents.Select(_ => new LatentState(o, rng)).ToArray();
        }).ToArray();
        var latentIndex = requests.Select(r => tensor(r.Latents.Select(l => (long)l).ToArray(), device: device).DetachFromDisposeScope()).ToArray();
        int docIndex = 0;
        long tokens = 0;
        try
        {
            foreach (var group in documents.Select(d => DocumentTokens.Encode(tokenizer, d)).Chunk(o.BatchSize))
            {
                using var scope = NewDisposeScope();
                using var batch = TokenBatch.RightPadded(group.Select(g => new TokenSequence(g.Ids)).ToArray(), context, statistics.PadTokenId, device);
                int T = (int)batch.InputIds.shape[1];
                var acts = ActivationCapture.Run(model, batch.InputIds, [hook], batch.AttentionMask)[hook];                  // (B, T, d)
                var counted = PositionMasks.RealTokens(batch.InputIds, batch.AttentionMask, statistics.ExcludeTokenIds).cpu().data<bool>().ToArray();
                if ((docIndex + group.Length) / 1000 > docIndex / 1000)
                    Reporting.Progress.Report($"dashboards: {docIndex + group.Length} documents, {tokens} tokens");
                for (int k = 0; k < requests.Count; k++)
                {
                    Tensor selected;
                    using (no_grad()) selected = requests[k].Sae.Encode(acts).index_select(2, latentIndex[k]);                  // (B, T, L)
                    var values = selected.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
                    int L = requests[k].Latents.Count;
                    for (int b = 0; b < group.Length; b++)
                    {
                        int length = Math.Min(T, group[b].Ids.Length);
                        for (int t = 0; t < length; t++)
                        {
                            if (!counted[b * T + t]) continue;
                            for (int l = 0; l < L; l++)
                            {
                                var v = values[(b * T + t) * L + l];
                                if (v > 0) states[k][l].Offer(v, () => Context(group[b], docIndex + b, t, length, values, b * T * L, L, l, o, tokenizer));
                            }
                        }
                    }
                }
                for (int b = 0; b < group.Length; b++)
                    for (int t = 0, length = Math.Min(T, group[b].Ids.Length); t < length; t++)
                        if (counted[b * T + t]) tokens++;
                docIndex += group.Length;
            }
        }
        finally
        {
            foreach (var t in latentIndex) t.Dispose();
        }
        return requests.Select((r, k) => (IReadOnlyList<LatentDashboard>)r.Latents.Select((latent, i) =>
        {
            var (positive, negative) = LogitEffects(model, tokenizer, r.Sae, latent, o.LogitCount);
            return states[k][i].Finish(latent, hook, docIndex, tokens, positive, negative);
        }).ToArray()).ToArray();
    }

    /// <summary>
    /// The latent's direct effect on the logits: its decoder row through the unembedding, without the final norm
    /// (SAEDashboard's convention); with tied embeddings the unembedding is embed_tokens.weight. Largest and smallest first.
    /// </summary>
    public static (IReadOnlyList<LogitEffect> Positive, IReadOnlyList<LogitEffect> Negative) LogitEffects(LlamaForCausalLM model, ITokenizer tokenizer,
        SparseAutoencoder sae, int latent, int count = 10)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var named = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var unembedding = named.GetValueOrDefault("lm_head.weight") ?? named.GetValueOrDefault("model.embed_tokens.weight")
            ?? throw new InvalidOperationException("the model has neither lm_head.weight nor model.embed_tokens.weight");   // (V, d)
        var direction = sae.W_dec.detach()[latent].to(unembedding.dtype, unembedding.device);                                 // (d)
        var effects = unembedding.matmul(direction).to(ScalarType.Float64).cpu().data<double>().ToArray();                   // (V)
        LogitEffect Effect(int id) => new(id, id < tokenizer.VocabSize ? tokenizer.IdToToken(id) : $"<{id}>", effects[id]);
        var order = Enumerable.Range(0, effects.Length).OrderByDescending(i => effects[i]).ThenBy(i => i).ToArray();
        return (order.Take(count).Select(Effect).ToArray(), order.Reverse().Take(count).Select(Effect).ToArray());
    }

    static ActivationContext Context(DocumentTokens doc, int docIndex, int position, int length, float[] values, int rowOffset, int L, int l,
        DashboardOptions o, ITokenizer tokenizer)
    {
        // Position 0 is BOS: never shown.
        int start = Math.Max(1, position - o.ContextTokens), end = Math.Min(length, position + o.ContextTokens + 1);
        var tokens = new string[end - start];
        var acts = new float[end - start];
        for (int p = start; p < end; p++)
        {
            tokens[p - start] = tokenizer.IdToToken(doc.Ids[p]);
            acts[p - start] = values[rowOffset + p * L + l];
        }
        return new ActivationContext(docIndex, position, values[rowOffset + position * L + l], doc.Document.Persona,
            doc.PersonaAt(position, PersonaLabel.ActingTurn), tokens, acts, position - start);
    }

    /// <summary>Streaming state of one latent: a bounded min-heap of the top activations and a uniform reservoir of firing tokens.</summary>
    sealed class LatentState(DashboardOptions o, Random rng)
    {
        // Priority (activation, -arrival): the heap evicts the smallest activation, and among equal ones the latest.
        readonly PriorityQueue<ActivationContext, (float, long)> top = new();
        readonly List<ActivationContext> sample = [];
        long firing;
        double max;

        public void Offer(float activation, Func<ActivationContext> context)
        {
            firing++;
            max = Math.Max(max, activation);
            if (top.Count < o.TopK) top.Enqueue(context(), (activation, -firing));
            else if (top.TryPeek(out _, out var least) && activation > least.Item1) top.EnqueueDequeue(context(), (activation, -firing));
            // Algorithm R: every firing token ends up in the sample with probability SampleSize / firing.
            if (sample.Count < o.SampleSize) sample.Add(context());
            else
            {
                var j = rng.NextInt64(firing);
                if (j < o.SampleSize) sample[(int)j] = context();
            }
        }

        public LatentDashboard Finish(int latent, string hook, int documents, long tokens, IReadOnlyList<LogitEffect> positive, IReadOnlyList<LogitEffect> negative)
        {
            var best = top.UnorderedItems.Select(e => e.Element).OrderByDescending(c => c.Activation).ThenBy(c => c.Document).ThenBy(c => c.Position).ToArray();
            var label = (Func<ActivationContext, PersonaKind>)(o.PurityLabel == PersonaLabel.Document ? c => c.DocumentPersona : c => c.ActingPersona);
            var purity = Enum.GetValues<PersonaKind>().Select(p =>
            {
                int n = best.Count(c => label(c) == p);
                return new PersonaShare(p, n, best.Length == 0 ? 0 : (double)n / best.Length);
            }).ToArray();
            var sorted = sample.OrderBy(c => c.Activation).ToArray();
            var quantiles = new List<QuantileGroup>();
            for (int q = 0; q < o.QuantileBins && sorted.Length > 0; q++)
            {
                int from = (int)((long)sorted.Length * q / o.QuantileBins), to = (int)((long)sorted.Length * (q + 1) / o.QuantileBins);
                if (to <= from) continue;
                var bin = sorted[from..to];
                var examples = bin.OrderBy(_ => rng.Next()).Take(o.PerQuantile).OrderByDescending(c => c.Activation).ToArray();
                quantiles.Add(new QuantileGroup(bin[0].Activation, bin[^1].Activation, examples));
            }
            return new LatentDashboard(latent, hook, documents, tokens, firing, max, best, quantiles, sorted.Select(c => c.Activation).ToArray(),
                positive, negative, o.PurityLabel, purity);
        }
    }
}
