using static TorchSharp.torch;

namespace PersonaWorkbook.Training;

public sealed record TrainerOptions
{
    public double LearningRate { get; init; } = 3e-4;
    public int WarmupSteps { get; init; }
    /// <summary>Optimizer steps to run.</summary>
    public int MaxSteps { get; init; } = 100;
    /// <summary>
    /// Length of the learning-rate schedule; null: <see cref="MaxSteps"/>. Set it longer to run only the first
    /// <see cref="MaxSteps"/> steps of a longer run (snapshots of a fine-tune's early steps see its learning rates).
    /// </summary>
    public int? ScheduleSteps { get; init; }
    /// <summary>Sequences per micro-batch.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Micro-batches per optimizer step; the loss is averaged over all their target tokens.</summary>
    public int GradAccumulation { get; init; } = 1;
    /// <summary>AdamW decoupled weight decay, applied to matrices only (not to norms or biases).</summary>
    public double WeightDecay { get; init; }
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Eps { get; init; } = 1e-8;
    /// <summary>Global gradient-norm clip; 0 or less disables clipping (the norm is still logged).</summary>
    public double ClipNorm { get; init; } = 1.0;
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Cosine;
    /// <summary>Learning rate at the end of decay, as a fraction of <see cref="LearningRate"/>.</summary>
    public double MinLrRatio { get; init; }
    /// <summary>Seeds torch (dropout, init of anything created during training) and the batch order.</summary>
    public int Seed { get; init; }
    /// <summary>Progress line every this many steps (0: never).</summary>
    public int LogEvery { get; init; } = 10;
    /// <summary>cpu, cuda, cuda:N or auto; see <see cref="TrainingDevice.Resolve"/>.</summary>
    public string Device { get; init; } = "cpu";
    public ScalarType Dtype { get; init; } = ScalarType.Float32;

    public void Validate()
    {
        void Require(bool ok, string field, string why)
        {
            if (!ok) throw new ArgumentException($"TrainerOptions.{field} {why}");
        }
        Require(LearningRate > 0, nameof(LearningRate), $"is {LearningRate}; must be positive");
        Require(MaxSteps > 0, nameof(MaxSteps), $"is {MaxSteps}; must be positive");
        Require(ScheduleSteps is null || ScheduleSteps >= MaxSteps, nameof(ScheduleSteps), $"is {ScheduleSteps}; must be ≥ MaxSteps ({MaxSteps})");
        Require(WarmupSteps >= 0, nameof(WarmupSteps), $"is {WarmupSteps}; must be ≥ 0");
        Require(BatchSize > 0, nameof(BatchSize), $"is {BatchSize}; must be positive");
        Require(GradAccumulation > 0, nameof(GradAccumulation), $"is {GradAccumulation}; must be positive");
        Require(WeightDecay >= 0, nameof(WeightDecay), $"is {WeightDecay}; must be ≥ 0");
        Require(MinLrRatio is >= 0 and <= 1, nameof(MinLrRatio), $"is {MinLrRatio}; must be in [0, 1]");
        Require(LogEvery >= 0, nameof(LogEvery), $"is {LogEvery}; must be ≥ 0");
    }
}
