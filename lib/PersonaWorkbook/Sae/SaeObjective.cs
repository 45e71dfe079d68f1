using PersonaWorkbook.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>One training batch's loss terms (inputs in scaled units).</summary>
public sealed record SaeStepStats(double Loss, double Mse, double Fvu, double AuxK, double L1, double L0);

/// <summary>
/// The SAE training losses and their gradients.
/// TopK / BatchTopK: loss = FVU + auxk_coef·AuxK, with FVU = Σ‖x̂−x‖² / Σ‖x−x̄‖² over the batch (OpenAI's normalised
/// MSE, sparsify's fvu). ReLU: loss = mean_b Σ_d (x̂−x)² + λ·mean_b Σ_i f_i‖W_dec,i‖ (SAELens standard).
/// TopK and BatchTopK never form a (B, d_sae) gradient: the selected pre-activations are leaves of the autograd graph,
/// the decoder is an embedding bag over the active rows, and after backward the gradients of W_dec and W_encᵀ are
/// summed into the active rows (<see cref="SparseGradient"/>).
/// TopK holds at most a bounded block of the (B, d_sae) pre-activations: they are selected block by block as the encoder computes them.
/// </summary>
public static class SaeObjective
{
    // Held for good: an implicit Scalar (clamp_min(1e-12)) is not kept alive through the native call by TorchSharp 0.107,
    // and a collection another thread starts can finalise it mid-call (Directory.Build.props; RMSNorm).
    static readonly Scalar Tiny = 1e-12.ToScalar();

    /// <summary>
    /// AuxK (Gao et al.): the dead latents' decode of their top-k_aux pre-activations, without b_dec (the residual
    /// already excludes it), regressed onto the detached residual e = x − x̂, divided by the error of predicting e by
    /// its batch mean (OpenAI normalized_mse: their target x − x̂ + b_dec against a decode that adds b_dec is the same
    /// difference). <paramref name="residual"/> must be detached; both are (B, d_in).
    /// </summary>
    public static Tensor AuxKLoss(Tensor deadReconstruction, Tensor residual)
    {
        using var scope = NewDisposeScope();
        var baseline = (residual - residual.mean([0], keepdim: true)).square().mean();
        return ((deadReconstruction - residual).square().mean() / baseline.clamp_min(Tiny)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Forward and backward for scaled inputs <paramref name="xs"/> (B, d_in): gradients accumulate into the SAE's
    /// parameters. <paramref name="dead"/> (d_sae, bool) marks latents for AuxK (TopK / BatchTopK only).
    /// Returns the stats and which latents fired (d_sae, bool).
    /// </summary>
    public static (SaeStepStats Stats, Tensor Fired) ForwardBackward(SparseAutoencoder sae, Tensor xs, Tensor? dead, SaeTrainingOptions o)
    {
        using var scope = NewDisposeScope();
        var (stats, fired) = sae.Config.Architecture switch
        {
            SaeArchitecture.TopK or SaeArchitecture.BatchTopK => SparseForwardBackward(sae, xs, dead, o),
            SaeArchitecture.ReLU => DenseForwardBackward(sae, xs, o),
            _ => throw new InvalidOperationException($"{sae.Config.Architecture} SAEs are inference-only; train TopK, BatchTopK or ReLU"),
        };
        return (stats, fired.MoveToOuterDisposeScope());
    }

    static (SaeStepStats, Tensor) SparseForwardBackward(SparseAutoencoder sae, Tensor x, Tensor? dead, SaeTrainingOptions o)
    {
        var cfg = sae.Config;
        var batch = x.shape[0];
        Tensor centred;
        SparseCodes codes;
        using (no_grad())
        {
            centred = cfg.ApplyBDecToInput ? x - sae.b_dec : x;                          // (B, d_in)
            codes = cfg.Architecture == SaeArchitecture.TopK
                ? SparseSelection.PerTokenBlocked(centred, sae.EncoderT, sae.b_enc, cfg.K)
                : SparseSelection.PerBatch(addmm(sae.b_enc, centred, sae.EncoderT.t(), 1, 1), (long)cfg.K * batch);
        }
        var selected = codes.PreActivations.detach().requires_grad_();                 // (N) leaf
        var acts = selected.relu();
        var decoded = sae.DecodeSparse(codes, acts);                                   // (B, d_in)
        decoded.retain_grad();
        var reconstruction = decoded + sae.b_dec;
        var error = (reconstruction - x).square().sum();
        var total = (x - x.mean([0], keepdim: true)).square().sum().clamp_min(Tiny);
        var fvu = error / total;
        var loss = fvu;

        SparseCodes? auxCodes = null;
        Tensor? auxSelected = null, auxActs = null, deadReconstruction = null;
        var auxValue = 0.0;
        var deadCount = dead is null ? 0 : dead.sum().item<long>();
        if (deadCount > 0 && o.AuxKCoefficient > 0)
        {
            var kAux = Math.Min(o.AuxK ?? cfg.DIn / 2, deadCount);
            using (no_grad())
            {
                // Only the dead latents' pre-activations are needed: a (B, n_dead) product, not a masked (B, d_sae) one.
                var deadLatents = dead!.nonzero().squeeze(1);                                // (n_dead)
                var c = SparseSelection.PerTokenBlocked(centred, sae.EncoderT.index_select(0, deadLatents), sae.b_enc.index_select(0, deadLatents), kAux);
                auxCodes = c with { Latents = deadLatents.index_select(0, c.Latents) };
            }
            auxSelected = auxCodes.PreActivations.detach().requires_grad_();
            auxActs = auxSelected.relu();
            deadReconstruction = sae.DecodeSparse(auxCodes, auxActs);                    // no b_dec
            deadReconstruction.retain_grad();
            var aux = AuxKLoss(deadReconstruction, (x - reconstruction).detach());
            auxValue = aux.item<float>();
            loss = loss + o.AuxKCoefficient * aux;
        }
        loss.backward();

        var latents = auxCodes is null ? codes.Latents : cat([codes.Latents, auxCodes.Latents]);
        var rows = auxCodes is null ? codes.Rows : cat([codes.Rows, auxCodes.Rows]);
        var grads = auxSelected is null ? selected.grad! : cat([selected.grad!, auxSelected.grad!]);
        using (no_grad())
        {
            // Decoder: ∂L/∂W_dec[j] = Σ_{n: latent j} a_n ∂L/∂decoded[row n]; AuxK's rows index a second block of B.
            var decodedGrad = auxCodes is null ? decoded.grad! : cat([decoded.grad!, deadReconstruction!.grad!]);   // (B or 2B, d_in)
            var decoderRows = auxCodes is null ? codes.Rows : cat([codes.Rows, auxCodes.Rows + batch]);
            var weights = auxCodes is null ? acts.detach() : cat([acts.detach(), auxActs!.detach()]);
            SparseGradient.Accumulate(latents, [
                new LatentRowSum(weights, decoderRows, decodedGrad, GradientOf(sae.W_dec)),                     // (d_sae, d_in)
                // Encoder, from the selected pre-activations' gradients: v_n = (x_b − b_dec)·W_encᵀ[j] + b_enc[j].
                new LatentRowSum(grads, rows, centred, GradientOf(sae.EncoderT))]);                          // (d_sae, d_in)
            var gBias = zeros(cfg.DSae, dtype: grads.dtype, device: grads.device).index_add_(0, latents, grads, HeldScalars.One);
            Accumulate(sae.b_enc, gBias);
            if (cfg.ApplyBDecToInput) Accumulate(sae.b_dec, -gBias.matmul(sae.EncoderT));
        }

        var firing = acts.detach().gt(HeldScalars.Zero);
        var fired = zeros(cfg.DSae, dtype: ScalarType.Int64, device: x.device).index_add_(0, codes.Latents, firing.to_type(ScalarType.Int64), HeldScalars.One).gt(HeldScalars.Zero);
        if (cfg.Architecture == SaeArchitecture.BatchTopK) UpdateThreshold(sae, acts.detach(), o.ThresholdRate);
        var l0 = firing.sum().item<long>() / (double)batch;
        var err = error.item<float>();
        return (new SaeStepStats(loss.item<float>(), err / batch, fvu.item<float>(), auxValue, 0, l0), fired);
    }

    static (SaeStepStats, Tensor) DenseForwardBackward(SparseAutoencoder sae, Tensor x, SaeTrainingOptions o)
    {
        var cfg = sae.Config;
        var batch = x.shape[0];
        var centred = cfg.ApplyBDecToInput ? x - sae.b_dec : x;
        var f = addmm(sae.b_enc, centred, sae.EncoderT.t(), 1, 1).relu();              // (B, d_sae)
        var reconstruction = addmm(sae.b_dec, f, sae.W_dec, 1, 1);                     // (B, d_in)
        var error = (reconstruction - x).square().sum();
        using var batchScalar = batch.ToScalar();
        using var l1Coefficient = o.L1Coefficient.ToScalar();
        var mse = error.div(batchScalar);
        var l1 = (f * sae.W_dec.norm(1)).sum().div(batchScalar);
        var loss = mse + l1.mul(l1Coefficient);
        loss.backward();
        var total = (x - x.mean([0], keepdim: true)).square().sum().clamp_min(Tiny);
        var fired = f.detach().gt(HeldScalars.Zero);
        var l0 = fired.sum().item<long>() / (double)batch;
        return (new SaeStepStats(loss.item<float>(), mse.item<float>(), (error / total).item<float>(), 0, l1.item<float>(), l0), fired.any(0));
    }

    /// <summary>BatchTopK's inference threshold: EMA (rate <paramref name="rate"/>) of the smallest positive kept activation.</summary>
    static void UpdateThreshold(SparseAutoencoder sae, Tensor acts, double rate)
    {
        var positive = acts.masked_select(acts.gt(HeldScalars.Zero));
        if (positive.numel() == 0) return;
        var minimum = positive.min().item<float>();
        var threshold = sae.Threshold!;
        // Seeded by the first batch rather than SAELens' 0, so short runs are not biased low.
        var current = threshold[0].item<float>();
        var next = current == 0 ? minimum : (1 - rate) * current + rate * minimum;
        using var nextScalar = next.ToScalar();
        threshold.fill_(nextScalar);
    }

    /// <summary>The parameter's gradient buffer, created as zeros if backward has not made one.</summary>
    static Tensor GradientOf(Parameter p)
    {
        if (p.grad is null)
        {
            using var zero = zeros_like(p);
            p.grad = zero;
        }
        return p.grad!;
    }

    static void Accumulate(Parameter p, Tensor gradient)
    {
        // set_grad keeps its own reference, so the caller's scope may dispose our handle.
        using var existing = p.grad;
        if (existing is null) p.grad = gradient;
        else existing.add_(gradient);
    }

    /// <summary>Removes from each decoder row's gradient its component along the (unit) row, so a step moves along the sphere.</summary>
    public static void RemoveParallelGradient(Parameter wDec)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var grad = wDec.grad;
        if (grad is null) return;
        var parallel = (grad * wDec).sum(1, keepdim: true);                             // (d_sae, 1)
        grad.sub_(parallel * wDec);
    }

    /// <summary>Rescales every decoder row to unit norm.</summary>
    public static void NormaliseRows(Parameter wDec)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        wDec.div_(wDec.norm(1, keepdim: true).clamp_min(Tiny));
    }
}
