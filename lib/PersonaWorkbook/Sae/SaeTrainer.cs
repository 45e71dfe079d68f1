using PersonaWorkbook.Models;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>How b_dec starts: zero, the data mean (sparsify), or the geometric median (OpenAI, dictionary_learning).</summary>
public enum DecoderBiasInit { Zero, Mean, GeometricMedian }

/// <summary>Training hyperparameters; defaults follow SAELens' runner and OpenAI's AuxK (see interpretability-tools.md §2).</summary>
public sealed class SaeTrainingOptions
{
    public double LearningRate { get; init; } = 3e-4;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Eps { get; init; } = 1e-8;
    /// <summary>Global gradient-norm clip (SAELens hard-codes 1.0); 0 turns it off.</summary>
    public double GradClipNorm { get; init; } = 1.0;
    /// <summary>Stop after this many steps (or when the batches run out).</summary>
    public int Steps { get; init; } = int.MaxValue;
    /// <summary>AuxK weight (OpenAI 1/32); 0 turns AuxK off.</summary>
    public double AuxKCoefficient { get; init; } = 1.0 / 32;
    /// <summary>k_aux; default d_in/2 (sparsify, SAELens, dictionary_learning heuristic).</summary>
    public int? AuxK { get; init; }
    /// <summary>A latent is dead once it has not fired for this many training tokens; default 1000 batches (SAELens' window).</summary>
    public long? DeadTokens { get; init; }
    /// <summary>λ of the ReLU SAE's decoder-norm-weighted L1 penalty (SAELens v6 default 1.0).</summary>
    public double L1Coefficient { get; init; } = 1.0;
    /// <summary>BatchTopK threshold EMA rate (SAELens topk_threshold_lr).</summary>
    public double ThresholdRate { get; init; } = 0.01;
    /// <summary>
    /// Scale inputs to unit mean squared norm per dimension with SAELens' expected_average_only_in,
    /// s = √d_in / E‖x‖, estimated on the first <see cref="NormalizationBatches"/> batches and folded into the weights on save.
    /// </summary>
    public bool NormalizeActivations { get; init; } = true;
    public int NormalizationBatches { get; init; } = 10;
    public DecoderBiasInit DecoderBiasInit { get; init; } = DecoderBiasInit.Mean;
    public int LogEvery { get; init; } = 10;
}

/// <summary>One logged training step (losses in scaled units).</summary>
public sealed record SaeLogEntry(int Step, long Tokens, double Loss, double Mse, double Fvu, double AuxK, double L1, double L0, double DeadFraction);

/// <summary>
/// Trains an SAE with Adam on batches of activations (B, d_in) in raw units. TopK and BatchTopK keep unit-norm decoder
/// rows (the gradient's component along each row removed before the step, rows renormalised after); ReLU relies on
/// its decoder-norm-weighted L1 instead. Latents are dead after <see cref="SaeTrainingOptions.DeadTokens"/> tokens
/// without firing, which feeds AuxK.
/// </summary>
public sealed class SaeTrainer : IDisposable
{
    readonly SparseAutoencoder sae;
    readonly SaeTrainingOptions options;
    readonly AdamOptimizer adam;
    readonly Tensor tokensSinceFired; // (d_sae) int64
    bool initialised;

    public SaeTrainer(SparseAutoencoder sae, SaeTrainingOptions? options = null)
    {
        this.sae = sae;
        this.options = options ?? new SaeTrainingOptions();
        adam = new AdamOptimizer([new AdamGroup(sae.Parameters, this.options.LearningRate)], this.options.Beta1, this.options.Beta2, this.options.Eps, decoupledWeightDecay: false);
        tokensSinceFired = zeros(sae.Config.DSae, dtype: ScalarType.Int64, device: sae.Device).DetachFromDisposeScope();
    }

    public List<SaeLogEntry> Log { get; } = [];
    public int StepCount { get; private set; }
    public long Tokens { get; private set; }

    bool Constrained => sae.Config.Architecture is SaeArchitecture.TopK or SaeArchitecture.BatchTopK;

    /// <summary>Latents that have not fired for the dead window (d_sae, bool); the caller owns it.</summary>
    public Tensor DeadMask(long batchSize) => tokensSinceFired.ge(options.DeadTokens ?? 1000L * batchSize);

    /// <summary>Trains on <paramref name="batches"/> (raw (B, d_in) tensors, disposed here) until Steps or the data end.</summary>
    public List<SaeLogEntry> Train(IEnumerable<Tensor> batches)
    {
        using var source = batches.GetEnumerator();
        var head = new List<Tensor>();
        try
        {
            if (!initialised)
            {
                while (head.Count < Math.Max(1, options.NormalizationBatches) && source.MoveNext()) head.Add(source.Current);
                if (head.Count == 0) throw new ArgumentException("no training batches");
                Initialise(head);
            }
            // Stops pulling at Steps, so an endless stream (a cycling store) is fine.
            foreach (var batch in head.Concat(Rest(source)))
            {
                using (batch)
                {
                    if (StepCount >= options.Steps) break;
                    Step(batch);
                }
            }
        }
        finally
        {
            foreach (var t in head) t.Dispose();
        }
        return Log;

        static IEnumerable<Tensor> Rest(IEnumerator<Tensor> e)
        {
            while (e.MoveNext()) yield return e.Current;
        }
    }

    /// <summary>Sets the input scale and b_dec from the first batches (raw units); <see cref="Train"/> calls it.</summary>
    public void Initialise(IReadOnlyList<Tensor> sample)
    {
        using var scope = NewDisposeScope();
        var x = cat(sample.Select(t => t.to(ScalarType.Float32, sae.Device)).ToList());   // (N, d_in)
        if (options.NormalizeActivations)
        {
            var meanNorm = x.norm(1).mean().item<float>();
            if (!(meanNorm > 0)) throw new ArgumentException("cannot normalise activations whose mean norm is zero");
            sae.SetInputScale(Math.Sqrt(sae.Config.DIn) / meanNorm);
        }
        var scaled = x * sae.InputScale;
        using (no_grad())
        {
            switch (options.DecoderBiasInit)
            {
                case DecoderBiasInit.Mean: sae.b_dec.copy_(scaled.mean([0])); break;
                case DecoderBiasInit.GeometricMedian: sae.b_dec.copy_(GeometricMedian.Compute(scaled.narrow(0, 0, Math.Min(scaled.shape[0], 32_768)))); break;
            }
        }
        initialised = true;
    }

    /// <summary>One Adam step on a raw batch (B, d_in).</summary>
    public SaeStepStats Step(Tensor batch)
    {
        if (!initialised) Initialise([batch]);
        using var scope = NewDisposeScope();
        var xs = batch.to(ScalarType.Float32, sae.Device) * sae.InputScale;
        var b = xs.shape[0];
        adam.ZeroGrad();
        using var dead = DeadMask(b);
        var (stats, fired) = SaeObjective.ForwardBackward(sae, xs, Constrained ? dead : null, options);
        if (Constrained) SaeObjective.RemoveParallelGradient(sae.W_dec);
        if (options.GradClipNorm > 0) nn.utils.clip_grad_norm_(sae.Parameters, options.GradClipNorm);
        adam.Step();
        if (Constrained) SaeObjective.NormaliseRows(sae.W_dec);
        using (var batchTokens = b.ToScalar()) tokensSinceFired.add_(batchTokens, HeldScalars.One).masked_fill_(fired, HeldScalars.Zero);
        StepCount++;
        Tokens += b;
        if (StepCount % Math.Max(1, options.LogEvery) == 0 || StepCount == 1 || StepCount == options.Steps)
        {
            using var deadAfter = DeadMask(b);
            var deadFraction = deadAfter.to_type(ScalarType.Float32).mean().item<float>();
            var entry = new SaeLogEntry(StepCount, Tokens, stats.Loss, stats.Mse, stats.Fvu, stats.AuxK, stats.L1, stats.L0, deadFraction);
            Log.Add(entry);
            Progress.Report($"sae step {StepCount}: loss {stats.Loss:G4}, fvu {stats.Fvu:F4}, auxk {stats.AuxK:G3}, L0 {stats.L0:F1}, dead {deadFraction:P1}");
        }
        return stats;
    }

    public void Dispose()
    {
        adam.Dispose();
        tokensSinceFired.Dispose();
    }
}

/// <summary>The geometric median of points (N, d) by Weiszfeld's iteration, started from the mean.</summary>
public static class GeometricMedian
{
    public static Tensor Compute(Tensor points, int maxIterations = 100, double tolerance = 1e-6)
    {
        using var scope = NewDisposeScope();
        var y = points.mean([0]);
        for (var i = 0; i < maxIterations; i++)
        {
            using var step = NewDisposeScope();
            // Weights 1/‖x − y‖, floored so a point sitting on y does not divide by zero.
            var w = (points - y).norm(1).clamp_min(1e-8).reciprocal();                 // (N)
            var next = (w.unsqueeze(1) * points).sum(dim: 0) / w.sum();                  // dim: named — a literal 0 would bind to sum(ScalarType)
            var moved = (next - y).norm().item<float>();
            var previous = y;
            y = next.MoveToOuterDisposeScope();
            previous.Dispose();
            if (moved <= tolerance * Math.Max(1.0, y.norm().item<float>())) break;
        }
        return y.MoveToOuterDisposeScope();
    }
}
