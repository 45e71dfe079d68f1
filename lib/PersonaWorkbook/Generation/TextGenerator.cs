using TorchSharp;
using PersonaWorkbook.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Generation;

public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>0 means greedy decoding.</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Nucleus sampling mass; 1 disables it.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Keep only the k most likely tokens; 0 disables it.</summary>
    public int TopK { get; init; }
    /// <summary>Generation of a row ends at the first of these (not included in the output).</summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];
    /// <summary>Seed of the sampling generator; the same seed, prompts and batch give the same tokens.</summary>
    public long Seed { get; init; }
    /// <summary>False recomputes the whole sequence at every step (for checking and benchmarking the cache).</summary>
    public bool UseKvCache { get; init; } = true;
    /// <summary>Id fed in padding positions (masked out, so its value does not matter beyond being a valid id).</summary>
    public int PadTokenId { get; init; }
}

public sealed record GeneratedSequence(int[] Tokens, bool Stopped);

/// <summary>
/// Batched autoregressive sampling: prompts are left-padded into one batch (so every row's next token is at the last
/// column), positions count real tokens only, and keys/values are cached between steps. Hooks attached to the model
/// stay active, and they see the generated tokens marked as response positions.
/// </summary>
public static class TextGenerator
{
    const int FuseFromNewTokens = 16;

    public static IReadOnlyList<GeneratedSequence> Generate(LlamaForCausalLM model, IReadOnlyList<int[]> prompts, GenerationOptions options)
    {
        if (prompts.Count == 0) return [];
        if (prompts.Any(p => p.Length == 0)) throw new ArgumentException("every prompt needs at least one token (e.g. BOS)");
        if (options.MaxNewTokens < 0) throw new ArgumentException("MaxNewTokens must be ≥ 0");
        var maxLen = prompts.Max(p => p.Length);
        if (maxLen + options.MaxNewTokens > model.Config.MaxPositionEmbeddings)
            Reporting.Progress.Report($"warning: prompt {maxLen} + {options.MaxNewTokens} new tokens exceeds max_position_embeddings {model.Config.MaxPositionEmbeddings}");

        var device = model.parameters().First().device;
        int B = prompts.Count;
        using var _ = no_grad();
        using var generator = new TorchSharp.torch.Generator((ulong)options.Seed, device);
        int capacity = maxLen + options.MaxNewTokens;
        using var cache = options.UseKvCache ? new KVCache(model.Config.NumHiddenLayers, capacity) : null;

        // (B, L) left-padded ids; the mask has room for every new column from the start (a step narrows it rather
        // than concatenating), and the uncached path grows the ids by one column per step.
        var ids = new long[B * maxLen];
        var mask = new long[B * capacity];
        var nextPosition = new long[B];
        for (int b = 0; b < B; b++)
        {
            for (int t = 0; t < capacity; t++)
            {
                int offset = t - (maxLen - prompts[b].Length);
                if (t < maxLen) ids[b * maxLen + t] = offset >= 0 ? prompts[b][offset] : options.PadTokenId;
                mask[b * capacity + t] = offset >= 0 ? 1 : 0;
            }
            nextPosition[b] = prompts[b].Length;
        }
        var allIds = tensor(ids, [B, maxLen], device: device).DetachFromDisposeScope();
        var maskBuffer = tensor(mask, [B, capacity], device: device).DetachFromDisposeScope();
        // The position of each row's next token: its count of real tokens so far (what the model's default
        // positions give, without a cumulative sum over the whole mask at every step).
        var positions = tensor(nextPosition, [B, 1], device: device).DetachFromDisposeScope();
        var outputs = Enumerable.Range(0, B).Select(_ => new List<int>()).ToArray();
        var stopped = new bool[B];
        var stops = options.StopTokens.ToHashSet();
        var previousResponseMask = model.Hooks.CurrentResponseMask;
        Tensor? next = null;
        // Stacking the projections copies the weights once, about what one step reads: worth it only for longer answers.
        using var fused = options.MaxNewTokens >= FuseFromNewTokens ? model.HoldFusedProjections() : null;
        try
        {
            for (int step = 0; step < options.MaxNewTokens && !stopped.All(s => s); step++)
            {
                using var scope = NewDisposeScope();
                long T = allIds.shape[1];
                var attentionMask = maskBuffer.narrow(1, 0, maxLen + step);               // (B, T_all)
                Tensor logits;
                if (cache is null || step == 0)
                {
                    // (B, T): every column from the prompt on; generated ones are response positions
                    model.Hooks.CurrentResponseMask = arange(T, device: device).ge(maxLen).unsqueeze(0).expand(B, T);
                    logits = model.Forward(allIds, attentionMask, cache: cache)[.., -1, ..]; // (B, V)
                }
                else
                {
                    model.Hooks.CurrentResponseMask = ones(B, 1, ScalarType.Bool, device);
                    logits = model.Forward(next!.unsqueeze(1), attentionMask, positions, cache)[.., -1, ..]; // (B, V)
                    positions.add_(HeldScalars.One);
                }
                var sampled = Sample(logits, options, generator);                          // (B)
                var values = sampled.data<long>().ToArray();
                for (int b = 0; b < B; b++)
                {
                    if (stopped[b]) continue;
                    if (stops.Contains((int)values[b])) stopped[b] = true;
                    else outputs[b].Add((int)values[b]);
                }
                // Finished rows keep being fed (a batch moves together); their extra tokens are discarded.
                next?.Dispose();
                next = sampled.DetachFromDisposeScope();
                if (cache is null)
                {
                    // Only the uncached path feeds the whole sequence again; with the cache the ids live in its keys and values.
                    var grownIds = cat([allIds, next.unsqueeze(1)], 1).DetachFromDisposeScope();
                    allIds.Dispose();
                    allIds = grownIds;
                }
            }
        }
        finally
        {
            model.Hooks.CurrentResponseMask = previousResponseMask;
            next?.Dispose();
            allIds.Dispose();
            maskBuffer.Dispose();
            positions.Dispose();
        }
        return outputs.Select((o, b) => new GeneratedSequence(o.ToArray(), stopped[b])).ToArray();
    }

    /// <summary>Next token ids (B) from last-position logits (B, V).</summary>
    public static Tensor Sample(Tensor logits, GenerationOptions options, TorchSharp.torch.Generator generator)
    {
        if (options.Temperature <= 0) return logits.argmax(-1);
        // Scalars held through their calls (see RMSNorm.eps).
        using var temperature = options.Temperature.ToScalar();
        var scaled = logits.to_type(ScalarType.Float32).div(temperature);
        if (options.TopK > 0 && options.TopK < scaled.shape[^1])
        {
            using var minusInfinity = float.NegativeInfinity.ToScalar();
            var kth = scaled.topk(options.TopK, dim: -1).values.narrow(-1, options.TopK - 1, 1); // (B, 1)
            scaled = scaled.masked_fill(scaled.lt(kth), minusInfinity);
        }
        var probs = nn.functional.softmax(scaled, -1);                                   // (B, V)
        if (options.TopP < 1.0)
        {
            var sorted = probs.sort(-1, descending: true);
            var (sortedProbs, order) = (sorted.Values, sorted.Indices);
            // Drop a token when the mass before it already reaches top_p (the most likely token always stays).
            var before = sortedProbs.cumsum(-1) - sortedProbs;
            using var topP = options.TopP.ToScalar();
            using var zero = 0.ToScalar();
            sortedProbs = sortedProbs.masked_fill(before.ge(topP), zero);
            var pick = multinomial(sortedProbs, 1, generator: generator);               // (B, 1) index into sorted
            return order.gather(-1, pick).squeeze(-1);
        }
        return multinomial(probs, 1, generator: generator).squeeze(-1);
    }
}
