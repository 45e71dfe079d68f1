using PersonaWorkbook.Hooks;
using PersonaWorkbook.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>
/// Reconstruction and sparsity of an SAE over a set of activations (raw units).
/// FVU = Σ‖x−x̂‖² / Σ‖x−x̄‖²; l2 ratio = mean ‖x̂‖/‖x‖; relative reconstruction bias = E‖x̂‖² / E[x·x̂]
/// (Gated SAE paper, eq. 10; 1 means no shrinkage); dead = never fired here; dense = fired on more than
/// <c>denseThreshold</c> of tokens.
/// </summary>
public sealed record SaeEvaluation(long Tokens, double L0, double Fvu, double DeadFraction, double DenseFraction,
    double L2Ratio, double RelativeReconstructionBias, double CosineSimilarity)
{
    public double ExplainedVariance => 1 - Fvu;
}

/// <summary>What splicing the SAE's reconstruction into the model does to next-token prediction.</summary>
/// <remarks>CE loss score = (CE_zero − CE_sae)/(CE_zero − CE_clean); KL score = (KL_zero − KL_sae)/KL_zero, with KL(clean ‖ patched) per token.</remarks>
public sealed record SpliceEvaluation(double CeClean, double CeSae, double CeZeroAblation, double KlSae, double KlZeroAblation)
{
    public double CeLossScore => (CeZeroAblation - CeSae) / (CeZeroAblation - CeClean);
    public double KlScore => (KlZeroAblation - KlSae) / KlZeroAblation;
}

public static class SaeMetrics
{
    /// <summary>Evaluates on batches of raw activations (B, d_in) (not disposed here).</summary>
    public static SaeEvaluation Evaluate(SparseAutoencoder sae, IEnumerable<Tensor> batches, double denseThreshold = 0.1)
    {
        using var _ = no_grad();
        using var firing = zeros(sae.Config.DSae, dtype: ScalarType.Float64);
        long n = 0;
        double active = 0, error = 0, sumSq = 0, ratio = 0, recSq = 0, dot = 0, cos = 0;
        Tensor? sum = null;
        try
        {
            foreach (var batch in batches)
            {
                using var scope = NewDisposeScope();
                var x = batch.reshape(-1, sae.Config.DIn).to(ScalarType.Float32, sae.Device);
                var f = sae.Encode(x);                                                   // (B, d_sae)
                var xHat = sae.Decode(f);                                                // (B, d_in)
                var fired = f.gt(0);
                firing.add_(fired.sum([0]).to(ScalarType.Float64).cpu());
                active += fired.sum().item<long>();
                error += (x - xHat).pow(2).sum().item<float>();
                sumSq += x.pow(2).sum().item<float>();
                var xNorm = x.norm(1);
                var rNorm = xHat.norm(1);
                ratio += (rNorm / xNorm.clamp_min(1e-12)).sum().item<float>();
                recSq += xHat.pow(2).sum().item<float>();
                var dots = (x * xHat).sum(1);
                dot += dots.sum().item<float>();
                cos += (dots / (xNorm * rNorm).clamp_min(1e-12)).sum().item<float>();
                var batchSum = x.sum([0]).to(ScalarType.Float64).cpu();
                if (sum is null) sum = batchSum.DetachFromDisposeScope();
                else sum.add_(batchSum);
                n += x.shape[0];
            }
            if (n == 0) throw new ArgumentException("no activations to evaluate");
            // Σ‖x − x̄‖² = Σ‖x‖² − N‖x̄‖²
            var centred = sumSq - sum!.pow(2).sum().item<double>() / n;
            var frequency = firing / n;
            return new SaeEvaluation(n, active / n, error / centred,
                frequency.eq(0).to(ScalarType.Float64).mean().item<double>(),
                frequency.gt(denseThreshold).to(ScalarType.Float64).mean().item<double>(),
                ratio / n, recSq / dot, cos / n);
        }
        finally
        {
            sum?.Dispose();
        }
    }

    /// <summary>
    /// Next-token cross-entropy and KL when the SAE's reconstruction (then zeros) replaces the activation at its hook
    /// site, on token batches (B, T) with optional attention masks (1 = real). Positions holding one of
    /// <paramref name="keepTokenIds"/> (BOS...) keep their clean activation, as they were excluded from training.
    /// Loss counts positions whose next token is real.
    /// </summary>
    public static SpliceEvaluation Splice(LlamaForCausalLM model, SparseAutoencoder sae, IEnumerable<(Tensor InputIds, Tensor? AttentionMask)> batches,
        string? hookName = null, IReadOnlyCollection<int>? keepTokenIds = null)
    {
        var site = hookName ?? sae.Config.HookName ?? throw new ArgumentException("the SAE config names no hook site; pass hookName");
        keepTokenIds ??= [];
        using var _ = no_grad();
        double ceClean = 0, ceSae = 0, ceZero = 0, klSae = 0, klZero = 0;
        long count = 0;
        foreach (var (ids, mask) in batches)
        {
            using var scope = NewDisposeScope();
            var keep = PositionMasks.RealTokens(ids, null, keepTokenIds).logical_not().unsqueeze(-1); // (B, T, 1): true = keep clean
            var clean = model.Forward(ids, mask);
            Tensor Patched(Func<Tensor, Tensor> replacement)
            {
                using var handle = Interventions.Replace(model.Hooks, site, x => where(keep.to(x.device), x, replacement(x)));
                return model.Forward(ids, mask);
            }
            var withSae = Patched(x => sae.Reconstruct(x).to_type(x.dtype));
            var zeroed = Patched(x => zeros_like(x));
            var targets = ids[.., 1..];                                                  // (B, T-1)
            var valid = (mask is null ? ones_like(targets, ScalarType.Bool) : mask[.., 1..].to_type(ScalarType.Bool))
                .logical_and(mask is null ? ones_like(targets, ScalarType.Bool) : mask[.., ..^1].to_type(ScalarType.Bool)); // (B, T-1)
            var n = valid.sum().item<long>();
            if (n == 0) continue;
            var cleanLog = clean[.., ..^1].log_softmax(-1).to_type(ScalarType.Float32);   // (B, T-1, V)
            double Ce(Tensor logits) => -logits[.., ..^1].log_softmax(-1).to_type(ScalarType.Float32)
                .gather(-1, targets.unsqueeze(-1)).squeeze(-1).masked_select(valid).sum().item<float>();
            double Kl(Tensor logits)
            {
                var patched = logits[.., ..^1].log_softmax(-1).to_type(ScalarType.Float32);
                return (cleanLog.exp() * (cleanLog - patched)).sum(-1).masked_select(valid).sum().item<float>();
            }
            ceClean += Ce(clean);
            ceSae += Ce(withSae);
            ceZero += Ce(zeroed);
            klSae += Kl(withSae);
            klZero += Kl(zeroed);
            count += n;
        }
        if (count == 0) throw new ArgumentException("no scored token positions in the batches");
        return new SpliceEvaluation(ceClean / count, ceSae / count, ceZero / count, klSae / count, klZero / count);
    }
}
