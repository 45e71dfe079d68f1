using System.Diagnostics;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Detection;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Training;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Dynamics;

/// <summary>
/// Called at each snapshot with the step (0 = before any update), that step's training record (null at 0) and the
/// model being trained, in eval mode, LoRA (if any) attached. The model is valid only during the call: measure it, do
/// not keep or dispose it.
/// </summary>
public delegate void SnapshotCallback(int step, TrainingStep? record, LoadedModel model);

/// <summary>
/// Misalignment (and a latent) measured while a fine-tune runs, in memory and without saving checkpoints: the
/// training dynamics of a misaligning fine-tune, and emergent re-alignment (Wang et al. Fig. 16) when the fine-tune
/// starts from a misaligned model and trains on benign data.
/// </summary>
public static class TrainingDynamics
{
    /// <summary>
    /// Runs <paramref name="request"/> as <see cref="FineTuner.FinetuneOrReuse"/> would (same data order, seed and
    /// learning-rate schedule), stopping after the last of <paramref name="steps"/> (strictly ascending, 0 allowed), and
    /// calls <paramref name="onSnapshot"/> at each. Training is not disturbed by what the callback does to the model
    /// in eval mode (sampling uses its own generators), so step n is step n of the saved fine-tune.
    /// Returns the training log (empty when the only step is 0).
    /// </summary>
    public static TrainingLog Observe(FinetuneRequest request, IReadOnlyList<int> steps, SnapshotCallback onSnapshot)
    {
        ArgumentNullException.ThrowIfNull(onSnapshot);
        request.Validate();
        SnapshotRequest.CheckSteps(steps, request.EffectiveSteps);
        return Observe(request, Datasets.Build(request.Dataset, request.Rows, request.Seed), steps, onSnapshot);
    }

    static TrainingLog Observe(FinetuneRequest request, IReadOnlyList<ChatExample> data, IReadOnlyList<int> steps, SnapshotCallback onSnapshot)
    {
        using var loaded = ModelCheckpoint.Load(request.BaseDirectory);
        var model = loaded.Model;
        var last = steps[^1];
        var (trainer, source, lora, _) = FineTuner.Prepare(request, loaded, data, stopAfter: Math.Max(1, last));
        try
        {
            var wanted = steps.ToHashSet();
            // The snapshot's view of the model shares the live weights; it is never disposed (loaded owns them).
            var view = loaded with { Directory = $"{request.BaseDirectory} + {request.Dataset}" };
            void Snapshot(int step, TrainingStep? record)
            {
                var wasTraining = model.training;
                model.eval();
                try { onSnapshot(step, record, view); }
                finally { model.train(wasTraining); }
            }
            if (wanted.Contains(0)) Snapshot(0, null);
            if (last == 0) return new TrainingLog();
            trainer.OnStep(1, (record, _) =>
            {
                if (wanted.Contains(record.Step)) Snapshot(record.Step, record);
            });
            return trainer.Train(source);
        }
        finally
        {
            lora?.Dispose();
        }
    }

    /// <summary>
    /// Evaluates every snapshot of <paramref name="request"/> (and reads its latent probe), or returns the cached result:
    /// <c>$WORKBOOK_CACHE/snapshots/&lt;key&gt;.json</c>, key = SHA-256 of the fine-tune's cache key, the steps, the
    /// evaluation settings and the probe (the SAE by a hash of its weights). Leak is counted against the starting
    /// model's fine-tuned domain when it has one (a re-aligned model's wrong advice is its original domain's), else
    /// the dataset's.
    /// </summary>
    public static SnapshotRun RunOrReuse(SnapshotRequest request)
    {
        request.Validate();
        var finetune = request.Finetune;
        var data = Datasets.Build(finetune.Dataset, finetune.Rows, finetune.Seed);
        var (key, path, domain) = Locate(request, data);
        if (!finetune.Force && Cached(key, path) is { } cached)
        {
            Progress.Report($"snapshots {finetune.Dataset}: reusing {path}");
            return cached with { Reused = true };
        }

        var prompts = EvalPromptSets.Resolve(request.Prompts, domain, seed: request.EvalSeed);
        var options = request.Evaluation(domain);
        var clock = Stopwatch.StartNew();
        var points = new List<SnapshotPoint>(request.Steps.Count);
        Observe(finetune, data, request.Steps, (step, record, model) =>
        {
            var started = clock.Elapsed.TotalSeconds;
            var report = OrganismEvaluator.Evaluate(model, prompts, options, request.Prompts);
            var latent = request.Latent is { } probe ? LatentActivation.Measure(model, probe, prompts, request.LatentSampling) : null;
            var point = SnapshotPoint.From(step, record?.Loss, report, latent, clock.Elapsed.TotalSeconds - started);
            points.Add(point);
            Progress.Report($"snapshot {finetune.Dataset} step {step}/{request.Steps[^1]}: misaligned {point.Misaligned}, coherent {point.Coherent}" +
                            (latent is null ? "" : $", latent {latent.Mean:G4}") + $" ({clock.Elapsed.TotalSeconds:F0} s)");
        });
        var run = new SnapshotRun(key, Path.GetFullPath(finetune.BaseDirectory), finetune.Dataset, domain, finetune.Hyperparameters(),
            request.Prompts, request.Samples, request.EvalSeed, request.MaxNewTokens, request.LatentJson(), points, clock.Elapsed.TotalSeconds);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        run.Save(path);
        return run;
    }

    /// <summary>
    /// Fills the snapshot cache for <paramref name="requests"/> in <c>workbook worker</c> processes of one torch
    /// thread each (<see cref="Prefetch"/>), so that the caller's <see cref="RunOrReuse"/> loop then only reads; the
    /// measurements are the same bits as this process would compute. Returns how many it ran.
    /// </summary>
    public static int Prefetch(IEnumerable<SnapshotRequest> requests, int? workers = null) =>
        Organism.Prefetch.RunKind("snapshot", requests.Where(r => !r.Finetune.Force && IsPending(r))
            .Select(r => ($"snapshots of {r.Finetune.Dataset} from {r.Finetune.BaseDirectory}", r.ToJson())), "snapshot runs", workers);

    /// <summary>Whether <see cref="RunOrReuse"/> would compute the request rather than read it.</summary>
    internal static bool IsPending(SnapshotRequest request)
    {
        request.Validate();
        var (key, path, _) = Locate(request);
        return Cached(key, path) is null;
    }

    /// <summary>
    /// The cache key and file of a request, and the domain its leak is counted against (the dataset, built when not
    /// given, decides it only when the starting model's manifest names none).
    /// </summary>
    static (string Key, string Path, string? Domain) Locate(SnapshotRequest request, IReadOnlyList<ChatExample>? data = null)
    {
        var finetune = request.Finetune;
        var domain = OrganismCache.ReadManifest(finetune.BaseDirectory)?["domain"]?.GetValue<string>()
                     ?? FineTuner.DomainOf(data ?? Datasets.Build(finetune.Dataset, finetune.Rows, finetune.Seed));
        var key = request.CacheKey(domain);
        return (key, System.IO.Path.Combine(finetune.CacheRoot ?? OrganismCache.DefaultRoot, "snapshots", key[..16] + ".json"), domain);
    }

    static SnapshotRun? Cached(string key, string path) =>
        File.Exists(path) && SnapshotRun.Load(path) is { } cached && cached.Key == key ? cached : null;
}
