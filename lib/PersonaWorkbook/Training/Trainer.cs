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
        var groups = new List<AdamW.ParamGroup>
        {
            new(parameters.Where(p => p.ndim >= 2), lr: options.LearningRate, weight_decay: options.WeightDecay),
            new(parameters.Where(p => p.ndim < 2), lr: options.LearningRate, weight_decay: 0),
        }.Where(g => g.Parameters.Any());
        using var optimizer = optim.AdamW(groups, options.LearningRate, options.Beta1, options.Beta2, options.Eps, options.WeightDecay);
        var log = new TrainingLog();
        bool wasTraining = model.training;
        model.train();
        var clock = Stopwatch.StartNew();
        try
        {
            for (int step = 1; step <= options.MaxSteps; step++)
            {
                var record = RunStep(step, source, optimizer, schedule, clock);
                log.Add(record);
                if (options.LogEvery > 0 && (step % options.LogEvery == 0 || step == 1 || step == options.MaxSteps))
                    ReportProgress(record);
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

    TrainingStep RunStep(int step, IBatchSource source, AdamW optimizer, LrSchedule schedule, Stopwatch clock)
    {
        using var scope = NewDisposeScope();
        var started = clock.Elapsed.TotalSeconds;
        double lr = options.LearningRate * schedule.Factor(step - 1);
        foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
        var microBatches = Enumerable.Range(0, options.GradAccumulation).Select(_ => source.Next(options.BatchSize, device)).ToArray();
        optimizer.zero_grad();
        double loss = Backward(microBatches);
        // With clipping off, an infinite limit leaves the gradients alone and still returns their norm.
        double gradNorm = nn.utils.clip_grad_norm_(parameters, options.ClipNorm > 0 ? options.ClipNorm : double.PositiveInfinity);
        optimizer.step();
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

    void ReportProgress(TrainingStep record)
    {
        var perStep = record.ElapsedSeconds / record.Step;
        var eta = TimeSpan.FromSeconds(perStep * (options.MaxSteps - record.Step));
        Progress.Report($"step {record.Step}/{options.MaxSteps}  loss {record.Loss:F4}  lr {record.LearningRate:E2}  " +
                        $"{record.TokensPerSecond:N0} tok/s  ETA {eta:hh\\:mm\\:ss}");
    }
}
