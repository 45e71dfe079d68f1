using PersonaWorkbook.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Training;

/// <summary>
/// What a <see cref="Trainer"/> minimises: a loss summed over the items of a batch, and how many items that is. A
/// step's loss is the sum over its micro-batches divided by their total count.
/// </summary>
public interface ITrainingObjective
{
    /// <summary>Items the summed loss of <paramref name="batch"/> runs over (target tokens, pairs, …).</summary>
    long Count(TokenBatch batch);

    /// <summary>The summed loss (a float32 scalar with a graph to the trained parameters).</summary>
    Tensor Sum(LlamaForCausalLM model, TokenBatch batch);

    /// <summary>Why a batch with <see cref="Count"/> 0 cannot be trained on, for the error message.</summary>
    string EmptyBatchReason { get; }
}

/// <summary>Next-token cross-entropy on the batch's target tokens (<see cref="CausalLmLoss"/>): pretraining, SFT, fine-tuning.</summary>
public sealed class NextTokenObjective : ITrainingObjective
{
    public static NextTokenObjective Instance { get; } = new();

    public long Count(TokenBatch batch) => batch.TargetTokens;

    public Tensor Sum(LlamaForCausalLM model, TokenBatch batch)
    {
        var logits = model.Forward(batch.InputIds, batch.HasPadding ? batch.AttentionMask : null); // (B, T, V)
        return CausalLmLoss.Sum(logits, batch.InputIds, batch.LossMask);
    }

    public string EmptyBatchReason => "no target tokens (every loss-mask entry is false)";
}
