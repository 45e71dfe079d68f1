using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>
/// Which latents are active for a batch of B tokens, in CSR order: entry n is latent <see cref="Latents"/>[n] of token
/// <see cref="Rows"/>[n]; token b's entries start at <see cref="Offsets"/>[b]. <see cref="PreActivations"/> are the
/// selected pre-activations (not yet ReLU'd).
/// </summary>
public sealed record SparseCodes(Tensor Rows, Tensor Latents, Tensor Offsets, Tensor PreActivations, long Batch)
{
    public long Count => Latents.shape[0];
}

/// <summary>Top-k selection of SAE pre-activations without sorting whole rows.</summary>
public static class SparseSelection
{
    /// <summary>
    /// The k largest entries of each row of <paramref name="scores"/> (R, S), exactly as <c>topk</c> but faster on CPU:
    /// rows are cut into groups of g, and the k groups with the largest maxima must hold the top k (any element of
    /// another group is beaten by k group maxima). So topk runs on S/g group maxima and then on k·g candidates instead
    /// of on all S entries. Values come unsorted.
    /// </summary>
    public static (Tensor Values, Tensor Indices) TopK(Tensor scores, long k)
    {
        var (rows, width) = (scores.shape[0], scores.shape[1]);
        if (k <= 0 || k > width) throw new ArgumentException($"k must be in [1, {width}], got {k}");
        var g = GroupSize(width, k);
        if (g < 2) return scores.topk((int)k, dim: 1, sorted: false);
        using var scope = NewDisposeScope();
        var groupMax = scores.view(rows, width / g, g).amax([-1]);                    // (R, S/g)
        var topGroups = groupMax.topk((int)k, dim: 1, sorted: false).indexes;         // (R, k)
        var offsets = arange(g, dtype: ScalarType.Int64, device: scores.device);      // (g)
        var candidates = (topGroups.unsqueeze(-1) * g + offsets).view(rows, k * g);   // (R, k·g)
        var (values, picked) = scores.gather(1, candidates).topk((int)k, dim: 1, sorted: false);
        var indices = candidates.gather(1, picked);                                   // (R, k)
        return (values.MoveToOuterDisposeScope(), indices.MoveToOuterDisposeScope());
    }

    /// <summary>The largest divisor g of <paramref name="width"/> with g ≤ √(width/k), so both topk passes are small.</summary>
    static long GroupSize(long width, long k)
    {
        var target = (long)Math.Sqrt((double)width / k);
        for (var g = target; g >= 2; g--)
            if (width % g == 0 && width / g >= k) return g;
        return 1;
    }

    /// <summary>Each token's k largest pre-activations (B, S) as codes.</summary>
    public static SparseCodes PerToken(Tensor pre, long k)
    {
        using var scope = NewDisposeScope();
        var (batch, _) = (pre.shape[0], pre.shape[1]);
        var (values, indices) = TopK(pre, k);                                          // (B, k)
        var rows = arange(batch, dtype: ScalarType.Int64, device: pre.device).repeat_interleave(k); // (B·k)
        var offsets = arange(0, batch * k, k, dtype: ScalarType.Int64, device: pre.device);        // (B)
        return Outer(new SparseCodes(rows, indices.reshape(-1), offsets, values.reshape(-1), batch));
    }

    /// <summary>
    /// BatchTopK: the <paramref name="total"/> largest ReLU'd pre-activations of the whole batch (B, S), in CSR order.
    /// A token may get any number of latents, including none.
    /// </summary>
    public static SparseCodes PerBatch(Tensor pre, long total)
    {
        using var scope = NewDisposeScope();
        var (batch, width) = (pre.shape[0], pre.shape[1]);
        var flat = pre.relu().view(1, batch * width);                                  // (1, B·S)
        var (_, positions) = TopK(flat, Math.Min(total, batch * width));
        var sorted = positions.view(-1).sort().Values;                                 // row-major = grouped by token
        var rows = sorted.div(width, RoundingMode.floor);
        var latents = sorted.remainder(width);
        var values = pre.view(-1).index_select(0, sorted);
        var counts = rows.bincount(null, batch);                                  // (B)
        var offsets = counts.cumsum(0) - counts;
        return Outer(new SparseCodes(rows, latents, offsets, values, batch));
    }

    static SparseCodes Outer(SparseCodes c) => new(c.Rows.MoveToOuterDisposeScope(), c.Latents.MoveToOuterDisposeScope(),
        c.Offsets.MoveToOuterDisposeScope(), c.PreActivations.MoveToOuterDisposeScope(), c.Batch);
}
