using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Detection;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Sae;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Dynamics;

/// <summary>
/// A fine-tune observed at <paramref name="Steps"/> (0 = the starting model): at each, the misaligned rate on
/// <paramref name="Prompts"/> (<paramref name="Samples"/> answers per prompt, <c>OrganismEvaluator</c>) and, with a
/// <paramref name="Latent"/> probe, the latent's mean activation on the model's own answers (<see cref="LatentActivation"/>).
/// The fine-tune is <paramref name="Finetune"/> run exactly as <see cref="FineTuner"/> would run it (same data, seed and
/// learning-rate schedule over its <see cref="FinetuneRequest.EffectiveSteps"/>), stopped after the last snapshot; its
/// Output is not used (nothing is saved but the measurements), its Force and CacheRoot apply to the measurement cache.
/// </summary>
public sealed record SnapshotRequest(
    FinetuneRequest Finetune,
    IReadOnlyList<int> Steps,
    string Prompts = "views",
    int Samples = 20,
    int EvalSeed = 0,
    int MaxNewTokens = 80,
    LatentProbe? Latent = null,
    LatentSampling? LatentSampling = null)
{
    /// <summary>The paper's re-alignment table (Wang et al. Fig. 16): steps 5–35 at batch 4, plus the start.</summary>
    public static IReadOnlyList<int> RealignmentSteps { get; } = [0, 5, 10, 20, 30, 35];

    /// <summary>The paper's re-alignment batch size (35 steps ≈ 140 samples).</summary>
    public const int RealignmentBatch = 4;

    /// <summary>
    /// Emergent re-alignment: continue fine-tuning a misaligned model (<paramref name="misalignedDirectory"/>) on
    /// benign data (<c>&lt;domain&gt;_correct</c> of its own or another domain), batch 4, the fine-tuner's default
    /// learning rate and schedule length, observed at <see cref="RealignmentSteps"/>.
    /// </summary>
    public static SnapshotRequest Realignment(string misalignedDirectory, string benignDataset, int seed = 0, int samples = 20,
        LatentProbe? latent = null, string? cacheRoot = null) =>
        new(new FinetuneRequest(misalignedDirectory, benignDataset, Seed: seed, BatchSize: RealignmentBatch, CacheRoot: cacheRoot),
            RealignmentSteps, Samples: samples, Latent: latent);

    internal void Validate()
    {
        Finetune.Validate();
        CheckSteps(Steps, Finetune.EffectiveSteps);
        if (!EvalPromptSets.Names.Contains(Prompts))
            throw new ArgumentException($"unknown prompt set '{Prompts}'; known: {string.Join(", ", EvalPromptSets.Names)}");
        Evaluation(null).Validate();
        Latent?.Validate();
        LatentSampling?.Validate();
    }

    /// <summary>Steps must be non-empty, ≥ 0, strictly ascending and within the fine-tune's schedule.</summary>
    internal static void CheckSteps(IReadOnlyList<int> steps, int scheduleSteps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        if (steps.Count == 0) throw new ArgumentException("no snapshot steps given");
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i] < 0) throw new ArgumentException($"snapshot step {steps[i]} is negative; steps count optimizer steps from 0 (the starting model)");
            if (i > 0 && steps[i] <= steps[i - 1])
                throw new ArgumentException($"snapshot steps must be strictly ascending: {steps[i]} comes after {steps[i - 1]}");
        }
        if (steps[^1] > scheduleSteps)
            throw new ArgumentException($"snapshot step {steps[^1]} is past the fine-tune's {scheduleSteps} steps; give a longer fine-tune (steps/epochs)");
    }

    internal EvalOptions Evaluation(string? domain) => new() { Samples = Samples, Seed = EvalSeed, MaxNewTokens = MaxNewTokens, FineTunedDomain = domain };

    /// <summary>What decided the measurements: the fine-tune's key, the steps, the evaluation and the probe.</summary>
    internal string CacheKey(string? domain) => OrganismCache.Key("snapshots/1", PersonaWorld.WorldVersion, FineTuner.CacheKey(Finetune),
        string.Join(",", Steps), Prompts, domain ?? "", Samples.ToString(CultureInfo.InvariantCulture), EvalSeed.ToString(CultureInfo.InvariantCulture),
        MaxNewTokens.ToString(CultureInfo.InvariantCulture), LatentJson()?.ToJsonString() ?? "");

    /// <summary>The probe as recorded in the result (the SAE by a hash of its folded weights and config).</summary>
    internal JsonObject? LatentJson() => Latent?.Record(LatentSampling);

    /// <summary>
    /// The request as a <c>workbook worker</c> job reads it, the probe's SAE by the folder it was loaded from; null
    /// when the probe's SAE was built in memory (a worker could not load it).
    /// </summary>
    public JsonObject? ToJson()
    {
        var latent = Latent?.ToJob();
        if (Latent is not null && latent is null) return null;
        return new JsonObject
        {
            ["finetune"] = JsonSerializer.SerializeToNode(Finetune),
            ["steps"] = new JsonArray(Steps.Select(s => (JsonNode)s).ToArray()),
            ["prompts"] = Prompts,
            ["samples"] = Samples,
            ["eval_seed"] = EvalSeed,
            ["max_new_tokens"] = MaxNewTokens,
            ["latent"] = latent,
            ["latent_sampling"] = LatentSampling is null ? null : JsonSerializer.SerializeToNode(LatentSampling),
        };
    }

    /// <summary>Reads <see cref="ToJson"/>'s object (loading the probe's SAE); errors name <paramref name="source"/> and the field.</summary>
    public static SnapshotRequest FromJson(JsonObject json, string source)
    {
        T Field<T>(JsonNode? node, string name) => Organism.Prefetch.JobField<T>(node, source, name);
        try
        {
            var request = new SnapshotRequest(Field<FinetuneRequest>(json["finetune"], "finetune"), Field<int[]>(json["steps"], "steps"),
                Field<string>(json["prompts"], "prompts"), Field<int>(json["samples"], "samples"), Field<int>(json["eval_seed"], "eval_seed"),
                Field<int>(json["max_new_tokens"], "max_new_tokens"), null,
                json["latent_sampling"] is { } sampling ? Field<LatentSampling>(sampling, "latent_sampling") : null);
            return json["latent"] is JsonObject latent ? request with { Latent = LatentProbe.FromJob(latent, source) } : request;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"{source}: not a snapshot job ({e.Message})", e);
        }
    }
}
