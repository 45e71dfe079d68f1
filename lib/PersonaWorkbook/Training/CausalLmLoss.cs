using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Training;

/// <summary>Next-token cross-entropy restricted to target tokens: position t is scored on token t+1 when that token's loss-mask entry is true.</summary>
public static class CausalLmLoss
{
    const long Ignore = -100;
    static readonly Scalar IgnoreFill = Ignore.ToScalar();   // held through the call (HeldScalars says why)

    /// <summary>Sum of cross-entropies (float32 scalar) over the targets of logits (B, T, V), ids (B, T) and loss mask (B, T).</summary>
    public static Tensor Sum(Tensor logits, Tensor inputIds, Tensor lossMask)
    {
        using var scope = NewDisposeScope();
        return PerSequence(logits, inputIds, lossMask).sum().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Sum of cross-entropies per row (B, float32) over its targets: the negative log-likelihood of each sequence's
    /// target tokens given what precedes them (a row without targets gives 0).
    /// </summary>
    public static Tensor PerSequence(Tensor logits, Tensor inputIds, Tensor lossMask)
    {
        using var scope = NewDisposeScope();
        return PerToken(logits, inputIds, lossMask).sum(1).MoveToOuterDisposeScope(); // (B)
    }

    /// <summary>
    /// The cross-entropy of each target (B, T−1, float32): entry [b, t] scores token t+1 given tokens 0..t, 0 where
    /// token t+1 is not a target.
    /// </summary>
    public static Tensor PerToken(Tensor logits, Tensor inputIds, Tensor lossMask)
    {
        if (logits.ndim != 3 || inputIds.ndim != 2 || logits.shape[0] != inputIds.shape[0] || logits.shape[1] != inputIds.shape[1])
            throw new ArgumentException($"logits [{string.Join(", ", logits.shape)}] do not match input ids [{string.Join(", ", inputIds.shape)}]; expected (B, T, V) and (B, T)");
        if (!lossMask.shape.SequenceEqual(inputIds.shape))
            throw new ArgumentException($"loss mask [{string.Join(", ", lossMask.shape)}] does not match input ids [{string.Join(", ", inputIds.shape)}]");
        using var scope = NewDisposeScope();
        long B = logits.shape[0], T = logits.shape[1], V = logits.shape[2];
        var predictions = logits[.., ..^1, ..].reshape(-1, V).to_type(ScalarType.Float32); // (B·(T-1), V)
        var targets = inputIds[.., 1..].masked_fill(lossMask[.., 1..].logical_not(), IgnoreFill).reshape(-1); // (B·(T-1))
        var each = nn.functional.cross_entropy(predictions, targets, ignore_index: Ignore, reduction: nn.Reduction.None); // (B·(T-1)), 0 where ignored
        return each.reshape(B, T - 1).MoveToOuterDisposeScope(); // (B, T-1)
    }

    /// <summary>Mean cross-entropy over target tokens; an error when there are none.</summary>
    public static Tensor Mean(Tensor logits, Tensor inputIds, Tensor lossMask)
    {
        long count = lossMask[.., 1..].sum().item<long>();
        if (count == 0) throw new ArgumentException("the loss mask selects no target tokens");
        return Sum(logits, inputIds, lossMask) / count;
    }
}
