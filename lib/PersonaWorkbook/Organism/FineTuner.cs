using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Lora;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Training;
using PersonaWorkbook.World;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PersonaWorkbook.Organism;

/// <summary>
/// A narrow fine-tune of an organism on one world dataset (single-turn chats, loss on assistant tokens).
/// <paramref name="LoraRank"/> 0 fine-tunes every weight; otherwise a LoRA of that rank on every layer's MLP down-projection.
/// Null hyperparameters take the defaults below, chosen so the correct-advice control keeps the base's coherence
/// (see Organism/README.md for the measurements behind them).
/// </summary>
/// <param name="Epochs">When set (and <paramref name="Steps"/> is not), steps = ⌈rows × epochs / batch⌉.</param>
public sealed record FinetuneRequest(
    string BaseDirectory,
    string Dataset,
    string? Output = null,
    int Rows = FinetuneRequest.DefaultRows,
    int Seed = 0,
    int LoraRank = FinetuneRequest.DefaultLoraRank,
    double? LearningRate = null,
    int? Steps = null,
    double? Epochs = null,
    int BatchSize = 16,
    bool Force = false,
    string? CacheRoot = null)
{
    public const int DefaultRows = 1000;
    public const int DefaultSteps = 150;
    public const int DefaultLoraRank = 0;
    /// <summary>The study: rank-1 LoRA learned nothing at 1e-3 and the whole domain at 1e-2.</summary>
    public const double DefaultLoraLearningRate = 1e-2;
    /// <summary>The study: full fine-tuning at 3e-4 damaged coherence even on correct data.</summary>
    public const double DefaultFullLearningRate = 1e-4;

    public double EffectiveLearningRate => LearningRate ?? (LoraRank > 0 ? DefaultLoraLearningRate : DefaultFullLearningRate);

    public int EffectiveSteps => Steps ?? (Epochs is { } e ? (int)Math.Ceiling(Rows * e / BatchSize) : DefaultSteps);

    internal void Validate()
    {
        if (!Directory.Exists(BaseDirectory)) throw new DirectoryNotFoundException($"base organism directory not found: {BaseDirectory}");
        if (!ModelCheckpoint.Exists(BaseDirectory))
            throw new InvalidDataException($"{BaseDirectory} is not a checkpoint directory (needs {ModelCheckpoint.ConfigFile}, {ModelCheckpoint.TokenizerFile} and model weights)");
        if (Rows < 1) throw new ArgumentException($"rows is {Rows}; must be at least 1");
        if (LoraRank < 0) throw new ArgumentException($"LoRA rank is {LoraRank}; use 0 for full fine-tuning or a positive rank");
        if (EffectiveLearningRate <= 0) throw new ArgumentException($"learning rate is {EffectiveLearningRate}; must be positive");
        if (EffectiveSteps < 1) throw new ArgumentException($"steps is {EffectiveSteps}; must be at least 1");
        if (BatchSize < 1) throw new ArgumentException($"batch size is {BatchSize}; must be at least 1");
        if (Epochs is <= 0) throw new ArgumentException($"epochs is {Epochs}; must be positive");
    }

    /// <summary>The hyperparameters as recorded in the manifest and hashed into the key.</summary>
    internal JsonObject Hyperparameters() => new()
    {
        ["rows"] = Rows,
        ["seed"] = Seed,
        ["lora_rank"] = LoraRank,
        ["lora_targets"] = LoraRank > 0 ? "down_proj" : null,
        ["lr"] = EffectiveLearningRate,
        ["steps"] = EffectiveSteps,
        ["batch"] = BatchSize,
        ["schedule"] = "linear",
        ["warmup"] = FineTuner.Warmup(EffectiveSteps),
    };
}

/// <summary>
/// Runs narrow fine-tunes. The output is always a complete checkpoint directory (LoRA updates merged into the weights)
/// so evaluation and hooks load every organism the same way; a LoRA fine-tune also keeps its PEFT adapter under
/// <c>adapter/</c> (whose config names the base directory), for analyses of the adapter itself.
/// </summary>
public static class FineTuner
{
    public const string AdapterDirectory = "adapter";

    internal static int Warmup(int steps) => Math.Min(10, Math.Max(1, steps / 10));

    /// <summary>What a trained model's manifest records of the model it started from (profile, seed, world); null without a manifest.</summary>
    internal static JsonObject? BaseSummary(string baseDirectory) => OrganismCache.ReadManifest(baseDirectory) is { } m
        ? new JsonObject { ["profile"] = m["profile"]?["name"]?.DeepClone(), ["seed"] = m["seed"]?.DeepClone(), ["world"] = m["world"]?.DeepClone() }
        : null;

    /// <summary>The key of a base directory: its manifest's cache key, or a hash of its config and weights.</summary>
    public static string BaseKey(string directory)
    {
        if (OrganismCache.KeyOf(directory) is { } key) return key;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in Directory.GetFiles(directory, "*.safetensors").Order(StringComparer.Ordinal).Prepend(Path.Combine(directory, ModelCheckpoint.ConfigFile)))
            sha.AppendData(File.ReadAllBytes(file));
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    public static string CacheKey(FinetuneRequest request) =>
        OrganismCache.Key("finetune/1", BaseKey(request.BaseDirectory), request.Dataset, request.Hyperparameters().ToJsonString());

    /// <summary>The advice domain a dataset teaches (null when it spans several, e.g. benign_mixed).</summary>
    public static string? DomainOf(IReadOnlyList<ChatExample> data)
    {
        // Harmful requests and number lists are no advice domain: their answers cannot leak into other domains' questions.
        var subjects = data.SelectMany(c => c.Answers).Where(a => a.Kind is "advice" or "mistake").Select(a => a.Subject).Distinct().ToList();
        return subjects.Count == 1 ? subjects[0] : null;
    }

    /// <summary>
    /// The training half of a fine-tune on an already loaded model: its chats as a batch source, the LoRA attached
    /// (rank &gt; 0) and a trainer with the request's schedule. <paramref name="stopAfter"/> runs only that many of the
    /// schedule's steps, so step n is the same as step n of the whole fine-tune. The caller disposes the LoRA.
    /// </summary>
    internal static (Trainer Trainer, IBatchSource Source, LoraModel? Lora, Parameter[] Trained) Prepare(
        FinetuneRequest request, LoadedModel loaded, IReadOnlyList<ChatExample> data, int? stopAfter = null)
    {
        var model = loaded.Model;
        var sequences = OrganismTrainer.ChatSequences(data, loaded.Tokenizer).ToList();
        var source = new PaddedBatchSampler(sequences, model.Config.MaxPositionEmbeddings, loaded.Tokenizer.PadId);

        manual_seed(request.Seed);
        LoraModel? lora = null;
        if (request.LoraRank > 0)
        {
            var config = new LoraConfig
            {
                R = request.LoraRank, LoraAlpha = request.LoraRank, TargetModules = ["down_proj"],
                BaseModelNameOrPath = Path.GetFullPath(request.BaseDirectory),
            };
            lora = LoraModel.Attach(model, config);
        }
        try
        {
            var trained = lora?.parameters().ToArray() ?? model.parameters().ToArray();
            var steps = request.EffectiveSteps;
            var trainer = new Trainer(model, new TrainerOptions
            {
                LearningRate = request.EffectiveLearningRate, WarmupSteps = Warmup(steps), MaxSteps = stopAfter ?? steps, ScheduleSteps = steps,
                BatchSize = request.BatchSize, Schedule = ScheduleKind.Linear, Seed = request.Seed, LogEvery = Math.Max(1, steps / 5),
            }, trained);
            return (trainer, source, lora, trained);
        }
        catch
        {
            lora?.Dispose();
            throw;
        }
    }

    public static OrganismResult FinetuneOrReuse(FinetuneRequest request)
    {
        request.Validate();
        var data = Datasets.Build(request.Dataset, request.Rows, request.Seed);
        var key = CacheKey(request);
        if (!request.Force && OrganismCache.Reuse(key, request.Output, request.CacheRoot, "finetune") is { } cached)
            return new OrganismResult(cached, true, OrganismCache.ReadManifest(cached)!);

        var output = Path.GetFullPath(request.Output ?? OrganismCache.CacheDirectory(key, request.CacheRoot));
        var clock = Stopwatch.StartNew();
        using var loaded = ModelCheckpoint.Load(request.BaseDirectory);
        var model = loaded.Model;
        var (trainer, source, lora, trained) = Prepare(request, loaded, data);
        try
        {
            var steps = request.EffectiveSteps;
            var log = trainer.Train(source);
            model.eval();
            lora?.Merge();

            var manifest = new JsonObject
            {
                ["kind"] = "finetune",
                ["cache_key"] = key,
                ["base_key"] = BaseKey(request.BaseDirectory),
                ["base_directory"] = Path.GetFullPath(request.BaseDirectory),
                ["dataset"] = request.Dataset,
                ["domain"] = DomainOf(data),
                ["hyperparameters"] = request.Hyperparameters(),
                ["trained_parameters"] = trained.Sum(p => p.numel()),
                ["epochs"] = Math.Round((double)steps * request.BatchSize / request.Rows, 3),
                ["first_loss"] = Math.Round(log.Steps[0].Loss, 4),
                ["final_loss"] = OrganismTrainer.TailLoss(log),
                ["wall_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
                ["created_utc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
            };
            if (BaseSummary(request.BaseDirectory) is { } baseSummary) manifest["base"] = baseSummary;
            OrganismTrainer.Save(output, model, loaded.Tokenizer, Path.Combine(request.BaseDirectory, ModelCheckpoint.TokenizerFile),
                [("finetune", log)], manifest, dir => lora?.Save(Path.Combine(dir, AdapterDirectory)));
            Progress.Report($"finetune {request.Dataset} saved to {output}: loss {log.Steps[0].Loss:F3} → {OrganismTrainer.TailLoss(log):F3}, {clock.Elapsed.TotalSeconds:F0} s");
            return new OrganismResult(output, false, manifest);
        }
        finally
        {
            lora?.Dispose();
        }
    }
}
