using PersonaWorkbook.Hooks;
using PersonaWorkbook.Models;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Training;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Diffing;

/// <summary>A judged answer: the prompt, the model's answer and whether it was misaligned.</summary>
public sealed record LabelledAnswer(string Prompt, string Answer, bool IsMisaligned);

/// <summary>
/// Mean-difference persona vector per layer (Chen et al.; Soligo et al.): mean residual (hook_resid_post of each block)
/// over the positive set's tokens minus the mean over the negative set's. <see cref="Layers"/>[l] has d_model entries.
/// </summary>
public sealed record PersonaVector(float[][] Layers, long PositiveTokens, long NegativeTokens)
{
    public Tensor Layer(int layer) => tensor(Layers[layer]);

    public double Norm(int layer) => Math.Sqrt(Layers[layer].Sum(x => (double)x * x));
}

/// <summary>A decoder direction's cosine with a vector.</summary>
public sealed record DecoderMatch(int Rank, int Latent, double Cosine);

/// <summary>Sums activations of two labelled sets per layer, in float64, for <see cref="PersonaVector"/>.</summary>
public sealed class MeanDifferenceAccumulator : IDisposable
{
    readonly Tensor sums;          // (2, layers, d): negative, positive
    readonly long[,] counts;

    public MeanDifferenceAccumulator(int layers, int dModel)
    {
        sums = zeros(2, layers, dModel, ScalarType.Float64).DetachFromDisposeScope();
        counts = new long[2, layers];
    }

    /// <summary>Adds activation rows (N, d) of one layer to the positive or negative set.</summary>
    public void Add(int layer, Tensor rows, bool positive)
    {
        if (rows.shape.Length != 2 || rows.shape[1] != sums.shape[2])
            throw new ArgumentException($"rows of shape [{string.Join(", ", rows.shape)}] for a d_model of {sums.shape[2]}");
        using var scope = NewDisposeScope();
        int set = positive ? 1 : 0;
        // dim: named, since a literal 0 would convert to ScalarType and sum everything.
        sums.select(0, set).select(0, layer).add_(rows.to(ScalarType.Float64).cpu().sum(dim: 0));
        counts[set, layer] += rows.shape[0];
    }

    /// <summary>mean(positive) − mean(negative) per layer; fails if a set is empty.</summary>
    public PersonaVector Result()
    {
        using var scope = NewDisposeScope();
        int layers = (int)sums.shape[1];
        var result = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            if (counts[0, l] == 0 || counts[1, l] == 0)
                throw new InvalidOperationException($"layer {l}: {counts[1, l]} positive and {counts[0, l]} negative tokens; both sets need tokens");
            result[l] = (sums.select(0, 1).select(0, l) / counts[1, l] - sums.select(0, 0).select(0, l) / counts[0, l]).to(ScalarType.Float32).data<float>().ToArray();
        }
        return new PersonaVector(result, counts[1, 0], counts[0, 0]);
    }

    public void Dispose() => sums.Dispose();
}

/// <summary>The mean-difference baseline that SAE diffing is compared with.</summary>
public static class PersonaVectors
{
    /// <summary>
    /// Misaligned minus aligned answers: mean hook_resid_post of every block over the answer tokens (special tokens
    /// excluded) of the model's own judged answers, each rendered as a one-turn chat with <paramref name="format"/>.
    /// </summary>
    public static PersonaVector FromAnswers(LlamaForCausalLM model, ChatFormat format, IReadOnlyList<LabelledAnswer> answers, StatisticsOptions options)
    {
        int misaligned = answers.Count(a => a.IsMisaligned);
        if (misaligned == 0 || misaligned == answers.Count)
            throw new InvalidOperationException($"{misaligned} misaligned and {answers.Count - misaligned} aligned answers: a mean-difference direction needs " +
                                                "both (sample more answers, or check that the fine-tune misaligns and still answers coherently)");
        var sequences = answers.Select(a => (MarkedSequence.FromChat(format.Encode([ChatMessage.User(a.Prompt), ChatMessage.Assistant(a.Answer)])), a.IsMisaligned));
        return Accumulate(model, sequences, options);
    }

    /// <summary>
    /// The world-supervised variant: mean over the answer spans of <paramref name="positive"/>'s pretraining documents
    /// (e.g. the villain) minus the mean over <paramref name="negative"/>'s (e.g. the helper); with
    /// <see cref="PersonaLabel.ActingTurn"/> each answer counts for the persona that produced its turn.
    /// </summary>
    public static PersonaVector FromDocuments(LlamaForCausalLM model, ITokenizer tokenizer, IEnumerable<PretrainDocument> documents,
        PersonaKind positive, PersonaKind negative, StatisticsOptions options, PersonaLabel label = PersonaLabel.Document)
    {
        if (positive == negative) throw new ArgumentException($"positive and negative persona are both {positive}");
        IEnumerable<(MarkedSequence, bool)> Sequences()
        {
            foreach (var doc in documents)
            {
                var tokens = DocumentTokens.Encode(tokenizer, doc);
                var pos = new bool[tokens.Ids.Length];
                var neg = new bool[tokens.Ids.Length];
                foreach (var turn in doc.Turns)
                {
                    var persona = label == PersonaLabel.Document ? doc.Persona : turn.Info.Persona;
                    if (persona != positive && persona != negative) continue;
                    var (start, end) = tokens.Tokens(turn.Answer);
                    for (int p = start; p < end; p++) (persona == positive ? pos : neg)[p] = true;
                }
                if (pos.Any(x => x)) yield return (new MarkedSequence(tokens.Ids, pos), true);
                if (neg.Any(x => x)) yield return (new MarkedSequence(tokens.Ids, neg), false);
            }
        }
        return Accumulate(model, Sequences(), options);
    }

    /// <summary>
    /// What a context tells the model about its speaker where the answer starts: mean hook_resid_post of every block at
    /// the <i>last</i> token of each positive context (e.g. a villain header and a question, ending in the answer marker)
    /// minus the same over the negative contexts. Comparing its norm per layer with the residual's shows at which block
    /// the persona reaches the answer position, the place a steering vector added at a middle layer has to act.
    /// </summary>
    public static PersonaVector FromContexts(LlamaForCausalLM model, IEnumerable<(int[] Ids, bool Positive)> contexts, StatisticsOptions options)
    {
        var limit = options.ContextLength ?? model.Config.MaxPositionEmbeddings;
        var sequences = contexts.Select((c, i) =>
        {
            if (c.Ids.Length == 0) throw new ArgumentException($"context {i} has no tokens");
            if (c.Ids.Length > limit) throw new ArgumentException($"context {i} has {c.Ids.Length} tokens; the window is {limit}, so its last token would be cut");
            return (new MarkedSequence(c.Ids, [.. new bool[c.Ids.Length - 1], true]), c.Positive);
        });
        // The last token is usually a marker, which the control-token exclusion would drop; it is the only one counted.
        return Accumulate(model, sequences, options with { ExcludeTokenIds = [] });
    }

    /// <summary>Cosine of <paramref name="vector"/> (d_in) with every SAE decoder row; the <paramref name="top"/> highest first.</summary>
    public static IReadOnlyList<DecoderMatch> DecoderCosines(SparseAutoencoder sae, Tensor vector, int top = 20)
    {
        using var scope = NewDisposeScope();
        var v = vector.to(ScalarType.Float32, sae.Device).flatten();
        if (v.shape[0] != sae.Config.DIn) throw new ArgumentException($"vector has {v.shape[0]} entries; the SAE's d_in is {sae.Config.DIn}");
        var norm = v.norm().item<float>();
        if (!(norm > 0)) throw new ArgumentException("cannot take cosines with a zero vector");
        using var _ = no_grad();
        var cos = sae.W_dec.detach().matmul(v) / (sae.W_dec.detach().norm(1).clamp_min(1e-12) * norm);   // (d_sae)
        var values = cos.cpu().data<float>().ToArray();
        return Enumerable.Range(0, values.Length).OrderByDescending(i => values[i]).ThenBy(i => i).Take(top)
            .Select((l, i) => new DecoderMatch(i + 1, l, values[l])).ToArray();
    }

    static PersonaVector Accumulate(LlamaForCausalLM model, IEnumerable<(MarkedSequence Sequence, bool Positive)> sequences, StatisticsOptions options)
    {
        options.Validate();
        var layers = model.Config.NumHiddenLayers;
        var sites = Enumerable.Range(0, layers).Select(l => new HookSiteNames(l).ResidPost).ToArray();
        var context = options.ContextLength ?? model.Config.MaxPositionEmbeddings;
        var device = model.parameters().First().device;
        using var acc = new MeanDifferenceAccumulator(layers, model.Config.HiddenSize);
        foreach (var group in sequences.Chunk(options.BatchSize))
        {
            using var scope = NewDisposeScope();
            for (int i = 0; i < group.Length; i++) group[i].Sequence.Validate(i);
            using var batch = TokenBatch.RightPadded(group.Select(s => new TokenSequence(s.Sequence.Ids)).ToArray(), context, options.PadTokenId, device);
            long width = batch.InputIds.shape[1];
            var acts = ActivationCapture.Run(model, batch.InputIds, sites, batch.AttentionMask);
            var real = PositionMasks.RealTokens(batch.InputIds, batch.AttentionMask, options.ExcludeTokenIds);
            var answers = real.logical_and(LatentStatistics.ResponseMask(group.Select(g => g.Sequence).ToArray(), width, device)); // (B, T)
            foreach (var positive in new[] { true, false })
            {
                var side = tensor(group.Select(g => g.Positive == positive).ToArray(), device: device).unsqueeze(1);   // (B, 1)
                var mask = answers.logical_and(side);                                                                 // (B, T)
                for (int l = 0; l < layers; l++)
                {
                    var rows = ActivationCapture.Select(acts[sites[l]], mask);                          // (N, d)
                    if (rows.shape[0] > 0) acc.Add(l, rows, positive);
                }
            }
        }
        return acc.Result();
    }
}
