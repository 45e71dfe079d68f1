using PersonaWorkbook.Models;
using PersonaWorkbook.Training;
using static TorchSharp.torch;

namespace PersonaWorkbook.Reinforcement;

/// <summary>
/// The policy-gradient loss of a group-relative RL step (GRPO / RLOO style, one update per sample, so the importance
/// ratio is 1): over the answer tokens y_t of each row with advantage A_row (<see cref="TokenBatch.RowWeights"/>),
/// <c>Σ −A_row · log π(y_t | y_&lt;t)</c>, plus with <paramref name="klBeta"/> &gt; 0 a penalty toward the frozen
/// <paramref name="reference"/>, <c>β · Σ (exp(d_t) − d_t − 1)</c> with d_t = log π_ref(y_t) − log π(y_t) (the
/// non-negative estimator of KL(π‖π_ref) of Schulman's note, used by GRPO). <see cref="Count"/> is the number of
/// answer tokens, so the trainer's step minimises the per-token mean.
/// </summary>
public sealed class PolicyGradientObjective : ITrainingObjective
{
    readonly LlamaForCausalLM? reference;
    readonly double klBeta;

    public PolicyGradientObjective(LlamaForCausalLM? reference = null, double klBeta = 0)
    {
        if (!(klBeta >= 0) || double.IsInfinity(klBeta)) throw new ArgumentOutOfRangeException(nameof(klBeta), klBeta, "the KL weight must be a finite number >= 0");
        if (klBeta > 0 && reference is null) throw new ArgumentException("a KL penalty needs the reference model", nameof(reference));
        this.reference = reference;
        this.klBeta = klBeta;
    }

    /// <summary>
    /// Skip the forward and backward passes of a batch whose every advantage is 0 (with no KL penalty): its gradient is
    /// exactly 0, so a zero gradient for every trainable parameter gives the optimizer the same step — Adam's moments
    /// and step count move as after the full computation, the weights come out the same bits — for the cost of a sum.
    /// Such batches are common: every group of a step earns the same reward before RL finds its first rewarded answer
    /// and again once the policy has converged. Off only to test that equivalence.
    /// </summary>
    internal bool SkipZeroAdvantageBatches { get; init; } = true;

    public long Count(TokenBatch batch) => batch.TargetTokens;

    public Tensor Sum(LlamaForCausalLM model, TokenBatch batch)
    {
        var advantages = batch.RowWeights ?? throw new ArgumentException("a policy-gradient batch carries each row's advantage (TokenBatch.RowWeights)");
        using var scope = NewDisposeScope();
        if (SkipZeroAdvantageBatches && klBeta == 0 && advantages.count_nonzero().item<long>() == 0)
            return (model.parameters().Where(p => p.requires_grad).Select(p => p.sum()).Aggregate((a, b) => a + b) * 0).MoveToOuterDisposeScope();
        var mask = batch.HasPadding ? batch.AttentionMask : null;
        var logp = -CausalLmLoss.PerToken(model.Forward(batch.InputIds, mask), batch.InputIds, batch.LossMask);   // (B, T-1), 0 off the answers
        var loss = -(advantages.unsqueeze(1) * logp).sum();
        if (klBeta > 0)
        {
            Tensor referenced;
            using (no_grad())
                referenced = -CausalLmLoss.PerToken(reference!.Forward(batch.InputIds, mask), batch.InputIds, batch.LossMask);   // (B, T-1)
            var d = referenced - logp;
            var kl = (d.exp() - d - 1).masked_fill(batch.LossMask[.., 1..].logical_not(), HeldScalars.Zero);                           // (B, T-1)
            loss = loss + klBeta * kl.sum();
        }
        return loss.MoveToOuterDisposeScope();
    }

    public string EmptyBatchReason => "no answer tokens (every sampled answer is empty)";
}
