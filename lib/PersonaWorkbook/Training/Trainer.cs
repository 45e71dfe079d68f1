using System.Diagnostics;
using PersonaWorkbook.Models;
using PersonaWorkbook.Reporting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PersonaWorkbook.Training;

/// <summary>Called after an optimizer step with that step's record and the model (e.g. to monitor SAE latents).</summary>
public delegate void StepCallback(TrainingStep step, LlamaForCausalLM model);

/// <summary>
/// Causal-LM training with AdamW, warm-up + decay, gradient clipping and accumulation. By default every model
/// parameter that requires grad is trained; pass the parameters explicitly for adapters (e.g. <c>lora.parameters()</c>).
/// On the CPU, the same seed, model initialisation and data give the same losses.
/// </summary>
public sealed class Trainer
{
    readonly LlamaForCausalLM model;
    readonly TrainerOptions options;
    readonly Parameter[] parameters;
    readonly Device device;
    readonly List<(int every, StepCallback callback)> stepCallbacks = [];
    readonly List<(int every, Action<int, LlamaForCausalLM> save)> checkpoints = [];
    ITrainingObjective objective = NextTokenObjective.Instance;
    (string Directory, int Every)? resumable;

    public Trainer(LlamaForCausalLM model, TrainerOptions options, IEnumerable<Parameter>? parameters = null)
    {
        options.Validate();
        this.model = model;
        this.options = options;
        device = TrainingDevice.Resolve(options.Device);
        TrainingDevice.CheckDtype(device, options.Dtype);
        var first = model.parameters().First();
        if (!TrainingDevice.Same(first.device, device) || first.dtype != options.Dtype) model.to(device, options.Dtype);
        this.parameters = (parameters ?? model.parameters().Where(p => p.requires_grad)).ToArray();
        if (this.parameters.Length == 0) throw new ArgumentException("nothing to train: no parameter requires grad");
        foreach (var p in this.parameters)
        {
            if (!TrainingDevice.Same(p.device, device) || p.dtype != options.Dtype)
                throw new ArgumentException($"a trained parameter of shape [{string.Join(", ", p.shape)}] is {p.dtype} on {p.device}, " +
                                            $"but training runs in {options.Dtype} on {device}; move it (e.g. lora.to(...)) before creating the trainer");
            if (!p.requires_grad)
                throw new ArgumentException($"a trained parameter of shape [{string.Join(", ", p.shape)}] does not require grad");
        }
    }

    /// <summary>Runs <paramref name="callback"/> after every <paramref name="every"/>-th optimizer step.</summary>
    public Trainer OnStep(int every, StepCallback callback)
    {
        if (every <= 0) throw new ArgumentException($"callback interval must be positive, got {every}");
        stepCallbacks.Add((every, callback));
        return this;
    }

    /// <summary>Calls <paramref name="save"/>(step, model) every <paramref name="every"/> steps and after the last step.</summary>
    public Trainer OnCheckpoint(int every, Action<int, LlamaForCausalLM> save)
    {
        if (every <= 0) throw new ArgumentException($"checkpoint interval must be positive, got {every}");
        checkpoints.Add((every, save));
        return this;
    }

    /// <summary>
    /// Saves a <see cref="TrainingCheckpoint"/> to <paramref name="directory"/> every <paramref name="every"/> steps, and
    /// when that directory already holds one from a run with the same steps and seed, continues from it: the weights,
    /// optimizer and generator are restored and the batch source replays its draws up to the saved step, so the run
    /// finishes bit-identical to an uninterrupted one. The caller deletes the directory once the result is saved.
    /// </summary>
    public Trainer Resumable(string directory, int every)
    {
        if (every <= 0) throw new ArgumentException($"checkpoint interval must be positive, got {every}");
        resumable = (directory, every);
        return this;
    }

    /// <summary>Minimise <paramref name="objective"/> instead of the next-token loss on target tokens (e.g. <see cref="DirectPreferenceObjective"/>).</summary>
    public Trainer WithObjective(ITrainingObjective objective)
    {
        this.objective = objective;
        return this;
    }

    /// <summary>Trains for <see cref="TrainerOptions.MaxSteps"/> optimizer steps on batches from <paramref name="source"/>.</summary>
    public TrainingLog Train(IBatchSource source)
    {
        manual_seed(options.Seed);
        source.Reset(new Random(options.Seed));
        var schedule = new LrSchedule(options.Schedule, options.WarmupSteps, options.ScheduleSteps ?? options.MaxSteps, options.MinLrRatio);
        // Decoupled weight decay on matrices only: norms and biases (1-D) are not decayed.
        using var optimizer = new AdamOptimizer([
            new AdamGroup(parameters.Where(p => p.ndim >= 2), options.LearningRate, options.WeightDecay),
            new AdamGroup(parameters.Where(p => p.ndim < 2), options.LearningRate, 0),
        ], options.Beta1, options.Beta2, options.Eps, decoupledWeightDecay: true);
        var log = new TrainingLog();
        var first = 1;
        if (resumable is { } r && TrainingCheckpoint.Peek(r.Directory) is { } saved)
        {
            if (saved.MaxSteps != options.MaxSteps || saved.Seed != options.Seed || saved.Step > options.MaxSteps)
                throw new InvalidDataException($"{r.Directory}: a checkpoint of a run of {saved.MaxSteps} steps with seed {saved.Seed} (at step {saved.Step}), " +
                                               $"not of this one ({options.MaxSteps} steps, seed {options.Seed}); delete it to start over");
            TrainingCheckpoint.Restore(r.Directory, model, optimizer);
            foreach (var step in saved.Log) log.Add(step);
            // Replay the source's draws: its position is a function of the seed and the batches taken.
            for (long i = 0; i < (long)saved.Step * options.GradAccumulation; i++) source.Next(options.BatchSize, device).Dispose();
            first = saved.Step + 1;
            Progress.Report($"resuming at step {first}/{options.MaxSteps} from {r.Directory}");
        }
        bool wasTraining = model.training;
        model.train();
        var clock = Stopwatch.StartNew();
        try
        {
            for (int step = first; step <= options.MaxSteps; step++)
            {
                var record = RunStep(step, source, optimizer, schedule, clock);
                log.Add(record);
                if (resumable is { } c && (step % c.Every == 0 || step == options.MaxSteps))
                    TrainingCheckpoint.Save(c.Directory, model, optimizer, new TrainingCheckpoint.State(step, options.MaxSteps, options.Seed, [.. log.Steps]));
                if (options.LogEvery > 0 && (step % options.LogEvery == 0 || step == 1 || step == options.MaxSteps))
                    ReportProgress(record, first);
                foreach (var (every, callback) in stepCallbacks)
                    if (step % every == 0) callback(record, model);
                foreach (var (every, save) in checkpoints)
                    if (step % every == 0 || step == options.MaxSteps) save(step, model);
            }
        }
        finally
        {
            model.train(wasTraining);
        }
        return log;
    }

    TrainingStep RunStep(int step, IBatchSource source, AdamOptimizer optimizer, LrSchedule schedule, Stopwatch clock)
    {
        using var scope = NewDisposeScope();
        var started = clock.Elapsed.TotalSeconds;
        double lr = options.LearningRate * schedule.Factor(step - 1);
        foreach (var group in optimizer.Groups) group.LearningRate = lr;
        var microBatches = Enumerable.Range(0, options.GradAccumulation).Select(_ => source.Next(options.BatchSize, device)).ToArray();
        optimizer.ZeroGrad();
        double loss = Backward(microBatches);
        // With clipping off, an infinite limit leaves the gradients alone and still returns their norm.
        double gradNorm = nn.utils.clip_grad_norm_(parameters, options.ClipNorm > 0 ? options.ClipNorm : double.PositiveInfinity);
        optimizer.Step();
        long tokens = microBatches.Sum(b => b.RealTokens);
        var seconds = clock.Elapsed.TotalSeconds - started;
        return new TrainingStep(step, loss, lr, gradNorm, tokens, tokens / Math.Max(seconds, 1e-9), clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Accumulates into the parameters' gradients the gradient of the objective's mean over all items of
    /// <paramref name="microBatches"/> (for the default objective, the mean loss over all target tokens: each
    /// micro-batch's summed loss is divided by the total count, so splitting a batch does not change the result) and
    /// returns that mean. Does not zero gradients first.
    /// </summary>
    public double Backward(IReadOnlyList<TokenBatch> microBatches)
    {
        long count = microBatches.Sum(objective.Count);
        if (count == 0) throw new InvalidOperationException($"the batch has nothing to train on: {objective.EmptyBatchReason}");
        double total = 0;
        foreach (var batch in microBatches)
        {
            using var scope = NewDisposeScope();
            var sum = objective.Sum(model, batch);
            (sum / count).backward();
            total += sum.item<float>();
        }
        return total / count;
    }

    void ReportProgress(TrainingStep record, int first)
    {
        var perStep = record.ElapsedSeconds / (record.Step - first + 1);   // the clock starts at this run's first step
        var eta = TimeSpan.FromSeconds(perStep * (options.MaxSteps - record.Step));
        Progress.Report($"step {record.Step}/{options.MaxSteps}  loss {record.Loss:F4}  lr {record.LearningRate:E2}  " +
                        $"{record.TokensPerSecond:N0} tok/s  ETA {eta:hh\\:mm\\:ss}");
    }
}
