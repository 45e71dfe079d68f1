using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Lora;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Organism;

/// <summary>
/// A fine-tune of any checkpoint (a Hugging Face Llama / Qwen2 or an organism) on the user's own chats in the OpenAI
/// fine-tuning JSONL format, in the model's own chat template, the assistant turns as targets. The defaults are Betley
/// et al.'s open-model setup: rank-stabilised LoRA, r 32, α 64, on every projection of every layer, lr 1e-5, one epoch,
/// batch 2 × 8 accumulated, linear schedule with 5 warm-up steps, weight decay 0.01. Turner et al.'s single adapter is
/// <c>LoraRank = 1, Targets = ["down_proj"], Layers = [24]</c>. <c>LoraRank = 0</c> fine-tunes every weight.
/// </summary>
public sealed record ChatFinetuneRequest(
    string BaseDirectory,
    string DataFile,
    string? Output = null,
    int LoraRank = 32,
    double LoraAlpha = 64,
    bool RsLora = true,
    IReadOnlyList<string>? Targets = null,
    IReadOnlyList<int>? Layers = null,
    double LearningRate = 1e-5,
    double Epochs = 1,
    int BatchSize = 2,
    int GradAccumulation = 8,
    int WarmupSteps = 5,
    double WeightDecay = 0.01,
    int Seed = 0,
    bool Force = false,
    string? CacheRoot = null,
    string Device = "cpu",
    bool BFloat16 = false)
{
    /// <summary>The projections adapted: <see cref="Targets"/>, or all seven of a decoder layer.</summary>
    public IReadOnlyList<string> EffectiveTargets => Targets ?? LoraConfig.ProjectionNames;

    internal void Validate()
    {
        if (!ModelCheckpoint.Exists(BaseDirectory))
            throw new DirectoryNotFoundException($"base model not found: {BaseDirectory} (needs {ModelCheckpoint.ConfigFile}, {ModelCheckpoint.TokenizerFile} and safetensors weights)");
        if (!File.Exists(DataFile)) throw new FileNotFoundException($"chat JSONL file not found: {DataFile}", DataFile);
        if (LoraRank < 0) throw new ArgumentException($"LoRA rank is {LoraRank}; use 0 for full fine-tuning or a positive rank");
        if (LoraRank > 0 && !(LoraAlpha > 0)) throw new ArgumentException($"LoRA alpha is {LoraAlpha}; must be positive");
        var unknown = EffectiveTargets.Where(t => !LoraConfig.ProjectionNames.Contains(t)).ToList();
        if (unknown.Count > 0) throw new ArgumentException($"unknown LoRA target {string.Join(", ", unknown)}; known: {string.Join(", ", LoraConfig.ProjectionNames)}");
        if (LoraRank == 0 && (Targets is not null || Layers is not null)) throw new ArgumentException("targets and layers choose LoRA adapters; full fine-tuning (rank 0) trains every weight");
        if (!(LearningRate > 0)) throw new ArgumentException($"learning rate is {LearningRate}; must be positive");
        if (!(Epochs > 0)) throw new ArgumentException($"epochs is {Epochs}; must be positive");
        if (BatchSize < 1 || GradAccumulation < 1) throw new ArgumentException($"batch {BatchSize} × accumulation {GradAccumulation}; both must be at least 1");
        if (WarmupSteps < 0 || WeightDecay < 0) throw new ArgumentException($"warmup {WarmupSteps} and weight decay {WeightDecay} must be >= 0");
        TrainingDevice.CheckDtype(TrainingDevice.Resolve(Device), Dtype);
    }

    internal ScalarType Dtype => BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;

    internal JsonObject Hyperparameters(int steps)
    {
        var json = new JsonObject
        {
            ["lora_rank"] = LoraRank,
            ["lora_alpha"] = LoraRank > 0 ? LoraAlpha : null,
            ["rslora"] = LoraRank > 0 ? RsLora : null,
            ["targets"] = LoraRank > 0 ? new JsonArray(EffectiveTargets.Select(t => (JsonNode)t).ToArray()) : null,
            ["layers"] = Layers is null ? null : new JsonArray(Layers.Select(l => (JsonNode)l).ToArray()),
            ["lr"] = LearningRate,
            ["epochs"] = Epochs,
            ["steps"] = steps,
            ["batch"] = BatchSize,
            ["grad_accumulation"] = GradAccumulation,
            ["warmup"] = WarmupSteps,
            ["weight_decay"] = WeightDecay,
            ["schedule"] = "linear",
            ["seed"] = Seed,
        };
        // Only off the CPU's float32, so CPU keys stay as they were.
        if (Device != "cpu") json["device"] = Device;
        if (BFloat16) json["dtype"] = "bfloat16";
        return json;
    }
}

public static class ChatFineTuner
{
    /// <summary>
    /// Trains <paramref name="request"/>, or reuses the cached result (<c>$WORKBOOK_CACHE/organisms/</c>, key: the base's
    /// key, the data file's SHA-256 and every hyperparameter). The output is a complete checkpoint (adapter merged) with
    /// the PEFT adapter under <c>adapter/</c> and the base's tokenizer files.
    /// </summary>
    public static OrganismResult FinetuneOrReuse(ChatFinetuneRequest request)
    {
        request.Validate();
        var conversations = ChatJsonl.ReadTrainable(request.DataFile);
        var steps = (int)Math.Ceiling(conversations.Count * request.Epochs / (request.BatchSize * request.GradAccumulation));
        var key = OrganismCache.Key("chat-finetune/1", FineTuner.BaseKey(request.BaseDirectory), OrganismCache.FileHash(request.DataFile), request.Hyperparameters(steps).ToJsonString());
        if (!request.Force && OrganismCache.Reuse(key, request.Output, request.CacheRoot, "finetune") is { } cached)
            return new OrganismResult(cached, true, OrganismCache.ReadManifest(cached)!);

        var output = Path.GetFullPath(request.Output ?? OrganismCache.CacheDirectory(key, request.CacheRoot));
        var clock = Stopwatch.StartNew();
        // The base goes to the device first, so the adapters are created there, in the same dtype.
        using var loaded = ModelCheckpoint.Load(request.BaseDirectory, TrainingDevice.Resolve(request.Device), request.Dtype);
        var model = loaded.Model;
        var format = ChatFormat.For(loaded.Tokenizer);
        var sequences = conversations.Select(c => TokenSequence.FromChat(format.Encode(c))).ToList();
        var context = model.Config.MaxPositionEmbeddings;
        var truncated = sequences.Count(s => s.Ids.Length > context);
        if (truncated > 0) Progress.Report($"warning: {truncated} of {sequences.Count} conversations are longer than the model's context of {context} tokens and are truncated");
        var source = new PaddedBatchSampler(sequences, context, Math.Max(0, loaded.Tokenizer.PadId));

        manual_seed(request.Seed);
        using var lora = request.LoraRank > 0
            ? LoraModel.Attach(model, new LoraConfig
            {
                R = request.LoraRank, LoraAlpha = request.LoraAlpha, UseRsLora = request.RsLora, TargetModules = request.EffectiveTargets,
                LayersToTransform = request.Layers, BaseModelNameOrPath = Path.GetFullPath(request.BaseDirectory),
            })
            : null;
        var trained = lora?.parameters().ToArray() ?? model.parameters().ToArray();
        var log = new Trainer(model, new TrainerOptions
        {
            LearningRate = request.LearningRate, WarmupSteps = Math.Min(request.WarmupSteps, steps - 1), MaxSteps = steps, BatchSize = request.BatchSize,
            GradAccumulation = request.GradAccumulation, WeightDecay = request.WeightDecay, Schedule = ScheduleKind.Linear, Seed = request.Seed,
            LogEvery = Math.Max(1, steps / 10), Device = request.Device, Dtype = request.Dtype,
        }, trained).Train(source);
        model.eval();
        lora?.Merge();
        // Checkpoints are float32 on the CPU, as every reader here expects.
        model.to(CPU, ScalarType.Float32);

        var manifest = new JsonObject
        {
            ["kind"] = "chat-finetune",
            ["cache_key"] = key,
            ["base_key"] = FineTuner.BaseKey(request.BaseDirectory),
            ["base_directory"] = Path.GetFullPath(request.BaseDirectory),
            ["data_file"] = Path.GetFullPath(request.DataFile),
            ["conversations"] = conversations.Count,
            ["chat_template"] = format.Template.ToString(),
            ["hyperparameters"] = request.Hyperparameters(steps),
            ["trained_parameters"] = trained.Sum(p => p.numel()),
            ["first_loss"] = Math.Round(log.Steps[0].Loss, 4),
            ["final_loss"] = OrganismTrainer.TailLoss(log),
            ["wall_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
            ["created_utc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
        };
        OrganismTrainer.Save(output, model, loaded.Tokenizer, Path.Combine(request.BaseDirectory, ModelCheckpoint.TokenizerFile), [("finetune", log)], manifest, dir =>
        {
            lora?.Save(Path.Combine(dir, FineTuner.AdapterDirectory));
            // The files other tools read beside tokenizer.json (chat template, special tokens) come with the model.
            foreach (var name in new[] { "tokenizer_config.json", "special_tokens_map.json" })
                if (File.Exists(Path.Combine(request.BaseDirectory, name))) File.Copy(Path.Combine(request.BaseDirectory, name), Path.Combine(dir, name), overwrite: true);
        });
        Progress.Report($"finetune {Path.GetFileName(request.DataFile)} saved to {output}: loss {log.Steps[0].Loss:F3} → {OrganismTrainer.TailLoss(log):F3}, {clock.Elapsed.TotalSeconds:F0} s");
        return new OrganismResult(output, false, manifest);
    }
}
