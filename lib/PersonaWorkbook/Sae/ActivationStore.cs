using PersonaWorkbook.Hooks;
using PersonaWorkbook.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>Which activations an <see cref="ActivationStore"/> reads and which token positions it drops.</summary>
public sealed class ActivationStoreOptions
{
    /// <summary>Activation site, e.g. blocks.2.hook_resid_post.</summary>
    public required string HookName { get; init; }
    /// <summary>Sequences per model forward pass.</summary>
    public int SequencesPerForward { get; init; } = 8;
    /// <summary>Sequences longer than this are truncated (SAELens context_size); null keeps them whole.</summary>
    public int? ContextSize { get; init; }
    /// <summary>Token ids whose positions never become training activations (BOS, PAD, chat-role tokens).</summary>
    public IReadOnlyCollection<int> ExcludeTokenIds { get; init; } = [];
    /// <summary>Id used to right-pad shorter sequences in a forward batch (the padding is masked out).</summary>
    public int PadTokenId { get; init; }
    /// <summary>
    /// Drop tokens whose activation norm exceeds this multiple of the median norm of the forward batch (attention sinks;
    /// dictionary_learning PR #52, Neuronpedia's ignore_high_activation_norm_multiple); 0 keeps all.
    /// </summary>
    public double OutlierNormMultiple { get; init; } = 10;
}

/// <summary>
/// Activations for SAE training, streamed: from a model over a corpus of token sequences (<see cref="Stream"/>), or from
/// an <see cref="ActivationCache"/>, through a <see cref="MixingBuffer"/> into shuffled batches. Nothing holds more than
/// one forward batch plus the mixing buffer, whatever the corpus size.
/// </summary>
public static class ActivationStore
{
    /// <summary>
    /// Runs the model over <paramref name="sequences"/> lazily, one forward batch at a time, and yields the kept
    /// tokens' activations (n, d_model) as float32 CPU tensors the caller owns.
    /// </summary>
    public static IEnumerable<Tensor> Stream(LlamaForCausalLM model, IEnumerable<int[]> sequences, ActivationStoreOptions options)
    {
        if (options.SequencesPerForward <= 0) throw new ArgumentException($"SequencesPerForward must be positive, got {options.SequencesPerForward}");
        if (!model.Hooks.Sites.Contains(options.HookName))
            throw new ArgumentException($"unknown activation site '{options.HookName}' for a {model.Config.NumHiddenLayers}-layer model");
        foreach (var group in sequences.Chunk(options.SequencesPerForward))
        {
            // The forward pass runs in a helper: an iterator must not yield while its own dispose scope is open.
            var rows = Forward(model, group, options);
            if (rows.shape[0] > 0) yield return rows;
            else rows.Dispose();
        }
    }

    static Tensor Forward(LlamaForCausalLM model, int[][] group, ActivationStoreOptions o)
    {
        using var scope = NewDisposeScope();
        var lengths = group.Select(s => Math.Min(s.Length, o.ContextSize ?? int.MaxValue)).ToArray();
        var width = Math.Max(1, lengths.Max());
        var ids = new long[group.Length * width];
        var mask = new long[group.Length * width];
        for (var b = 0; b < group.Length; b++)
            for (var t = 0; t < width; t++)
            {
                var real = t < lengths[b];
                ids[b * width + t] = real ? group[b][t] : o.PadTokenId;
                mask[b * width + t] = real ? 1 : 0;
            }
        var device = model.parameters().First().device;
        var inputIds = tensor(ids, [group.Length, width], device: device);                   // (B, T)
        var attention = tensor(mask, [group.Length, width], device: device);                  // (B, T)
        var acts = ActivationCapture.Run(model, inputIds, [o.HookName], attention)[o.HookName]; // (B, T, d)
        var keep = PositionMasks.RealTokens(inputIds, attention, o.ExcludeTokenIds);
        var rows = ActivationCapture.Select(acts, keep).to(ScalarType.Float32);               // (N, d)
        if (o.OutlierNormMultiple > 0 && rows.shape[0] > 0)
        {
            var norms = rows.norm(1);
            rows = rows[norms.le(norms.median() * o.OutlierNormMultiple)];
        }
        return rows.cpu().contiguous().MoveToOuterDisposeScope();
    }
}

/// <summary>
/// SAELens' mixing buffer: collect chunks until the buffer holds its capacity in tokens, shuffle, serve half as batches,
/// keep the other half; at the end of the data the rest is shuffled and served. Only whole batches are served.
/// </summary>
public sealed class MixingBuffer(long capacityTokens, int batchSize, long seed = 0)
{
    readonly Generator generator = new((ulong)seed);

    /// <summary>The most tokens the buffer has held at once (capacity + one incoming chunk at most).</summary>
    public long PeakTokens { get; private set; }

    /// <summary>Shuffled (batchSize, d) batches the caller owns; the incoming chunks are disposed here.</summary>
    public IEnumerable<Tensor> Batches(IEnumerable<Tensor> chunks)
    {
        if (capacityTokens < 2L * batchSize) throw new ArgumentException($"mixing buffer of {capacityTokens} tokens is smaller than two batches of {batchSize}");
        var held = new List<Tensor>();
        long count = 0;
        try
        {
            foreach (var chunk in chunks)
            {
                held.Add(chunk);
                count += chunk.shape[0];
                PeakTokens = Math.Max(PeakTokens, count);
                if (count < capacityTokens) continue;
                var (batches, rest) = Mix(held, count, final: false);
                held.Clear();
                held.Add(rest);
                count = rest.shape[0];
                foreach (var batch in batches) yield return batch;
            }
            if (count >= batchSize)
            {
                var (batches, rest) = Mix(held, count, final: true);
                held.Clear();
                rest.Dispose();
                foreach (var batch in batches) yield return batch;
            }
        }
        finally
        {
            foreach (var t in held) t.Dispose();
        }
    }

    (List<Tensor> Batches, Tensor Remainder) Mix(List<Tensor> held, long count, bool final)
    {
        using var scope = NewDisposeScope();
        var all = cat(held);                                                          // (count, d)
        foreach (var t in held) t.Dispose();
        var shuffled = all.index_select(0, randperm(count, generator: generator));
        var serve = (final ? count : count / 2) / batchSize * batchSize;
        var batches = new List<Tensor>();
        for (long start = 0; start < serve; start += batchSize)
            batches.Add(shuffled.narrow(0, start, batchSize).clone().DetachFromDisposeScope());
        var rest = shuffled.narrow(0, serve, count - serve).clone().DetachFromDisposeScope();
        return (batches, rest);
    }
}
