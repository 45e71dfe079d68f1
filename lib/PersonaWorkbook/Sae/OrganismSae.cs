using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Models;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Training;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>
/// An SAE for an organism, trained the paper's way (§3: on the base model's pretraining-data activations at a middle
/// residual layer). <paramref name="Layer"/> null picks the middle: <c>blocks.{L/2 − 1}.hook_resid_post</c>, the
/// stream after half the blocks. Training reads <paramref name="Tokens"/> activations from pretraining documents of the
/// organism's own world drawn with a corpus seed the organism never trained on, <paramref name="Epochs"/> times.
/// <paramref name="Device"/> ("cpu", "cuda", "cuda:N", "auto"; <see cref="TrainingDevice.Resolve"/>) is where the model
/// reads its activations and the SAE trains and is evaluated; a GPU's rounding differs from the CPU's, so a GPU run is
/// cached under its own key (the device type joins the hyperparameters) and a CPU run keeps the key it always had.
/// </summary>
public sealed record SaeRequest(
    string ModelDirectory,
    int Seed = 0,
    int? Layer = null,
    int DSae = SaeRequest.DefaultDSae,
    int K = SaeRequest.DefaultK,
    SaeArchitecture Architecture = SaeArchitecture.TopK,
    long Tokens = SaeRequest.DefaultTokens,
    int Epochs = SaeRequest.DefaultEpochs,
    int BatchSize = SaeRequest.DefaultBatchSize,
    double LearningRate = SaeRequest.DefaultLearningRate,
    string? Output = null,
    bool Force = false,
    string? CacheRoot = null,
    string? Corpus = null,
    string Device = "cpu")
{
    public const int DefaultDSae = 2048;
    public const int DefaultK = 32;
    public const long DefaultTokens = 2_000_000;
    public const int DefaultEpochs = 2;
    public const int DefaultBatchSize = 4096;
    public const double DefaultLearningRate = 1e-3;
    /// <summary>The corpus seed of SAE training documents; the organisms pretrain on seeds 0–2 (+1 SFT, +2 replay).</summary>
    public const int CorpusSeed = 7919;
    /// <summary>Held-out documents for the reported metrics (another seed again).</summary>
    public const int EvaluationSeed = 7920;

    public string HookName(int layers) => $"blocks.{Layer ?? MiddleLayer(layers)}.hook_resid_post";

    /// <summary>The block whose output is the middle of a model of <paramref name="layers"/> blocks: the stream after half of them.</summary>
    public static int MiddleLayer(int layers) => Math.Max(0, layers / 2 - 1);

    internal void Validate()
    {
        if (!ModelCheckpoint.Exists(ModelDirectory))
            throw new DirectoryNotFoundException($"{ModelDirectory} is not a checkpoint directory (needs {ModelCheckpoint.ConfigFile}, {ModelCheckpoint.TokenizerFile} and model weights)");
        if (DSae < 1) throw new ArgumentException($"d_sae is {DSae}; must be positive");
        if (Architecture is SaeArchitecture.TopK or SaeArchitecture.BatchTopK && (K < 1 || K > DSae))
            throw new ArgumentException($"k is {K}; must be in [1, d_sae = {DSae}]");
        if (Architecture is SaeArchitecture.JumpReLU) throw new ArgumentException("JumpReLU is inference-only; train BatchTopK to get one");
        if (Tokens < 2L * BatchSize) throw new ArgumentException($"tokens is {Tokens}; need at least two batches of {BatchSize}");
        if (Epochs < 1) throw new ArgumentException($"epochs is {Epochs}; must be at least 1");
        if (!(LearningRate > 0)) throw new ArgumentException($"learning rate is {LearningRate}; must be positive");
        if (Corpus is not null && !File.Exists(Corpus)) throw new FileNotFoundException($"SAE corpus file not found: {Corpus}", Corpus);
        ResolvedDevice();
    }

    /// <summary>The device this request runs on, and the name the cache keys give it (null for the CPU, so CPU keys hold).</summary>
    internal (Device Device, string? KeyName) ResolvedDevice()
    {
        var device = TrainingDevice.Resolve(Device);
        return (device, device.type == TorchSharp.DeviceType.CPU ? null : device.type.ToString().ToLowerInvariant());
    }

    /// <summary>The corpus's SHA-256 (hex), or null for the persona world's documents.</summary>
    internal string? CorpusHash() => Corpus is null ? null : OrganismCache.FileHash(Corpus);

    /// <summary>
    /// The hyperparameters as hashed into the key; a user's corpus replaces the world's corpus seed by its hash (the
    /// world's JSON is unchanged, so its SAEs keep their keys). A training run computes them once: the hash reads the
    /// whole corpus.
    /// </summary>
    internal JsonObject Hyperparameters(string hook)
    {
        var json = new JsonObject
        {
            ["hook_name"] = hook,
            ["architecture"] = Architecture.ToString(),
            ["d_sae"] = DSae,
            ["k"] = K,
            ["tokens"] = Tokens,
            ["epochs"] = Epochs,
            ["batch"] = BatchSize,
            ["lr"] = LearningRate,
            ["seed"] = Seed,
        };
        if (Corpus is null) json["corpus_seed"] = CorpusSeed;
        else json["corpus_sha256"] = CorpusHash();
        json["aux_k_coefficient"] = 1.0 / 32;
        if (ResolvedDevice().KeyName is { } device) json["device"] = device;
        return json;
    }
}

/// <summary>A trained SAE directory (SAELens layout plus <see cref="OrganismSae.ManifestFile"/>) and its recorded evaluation.</summary>
public sealed record SaeResult(string Directory, bool Reused, JsonObject Manifest)
{
    /// <summary>The training log (<see cref="OrganismSae.LogFile"/>), one entry per logged step.</summary>
    public IReadOnlyList<SaeLogEntry> Log => OrganismSae.ReadLog(Directory);

    double Metric(string name) => Manifest["evaluation"]?[name]?.GetValue<double>()
        ?? throw new InvalidDataException($"{Path.Combine(Directory, OrganismSae.ManifestFile)}: evaluation.{name} is missing");

    public double Fvu => Metric("fvu");
    public double L0 => Metric("l0");
    public double DeadFraction => Metric("dead_fraction");
    public double CeLossScore => Metric("ce_loss_score");

    /// <summary>The SAE's cache key (SHA-256, hex): what decided its weights, and so what its latent indices mean.</summary>
    public string Key => Manifest["cache_key"]?.GetValue<string>()
        ?? throw new InvalidDataException($"{Path.Combine(Directory, OrganismSae.ManifestFile)}: cache_key is missing");

    /// <summary>
    /// Stops unless this is the SAE whose key starts with <paramref name="keyPrefix"/>: a latent index (notebook 04's
    /// toxic-persona latent, passed to notebooks 05–07) names a direction of one trained SAE only, and a retrained SAE
    /// (another organism, seed or setting) numbers unrelated directions the same way.
    /// </summary>
    public SaeResult RequireKey(string keyPrefix, string? remedy = null)
    {
        if (keyPrefix.Length < 8 || !keyPrefix.All(char.IsAsciiHexDigitLower))
            throw new ArgumentException($"'{keyPrefix}' is not a key prefix: give at least 8 lower-case hex digits of the SAE's cache_key", nameof(keyPrefix));
        return Key.StartsWith(keyPrefix, StringComparison.Ordinal) ? this : throw new InvalidOperationException(
            $"the SAE in {Directory} has key {Key[..16]}…, not {keyPrefix}…: its latent indices are not the ones named{(remedy is null ? "" : "; " + remedy)}");
    }
}

/// <summary>
/// Trains (or finds in the cache) the SAE of an organism: activations are streamed once into an on-disk
/// <see cref="ActivationCache"/> shared by every SAE seed and width on the same model, layer and corpus; training
/// shuffles them through a <see cref="MixingBuffer"/>; the result is evaluated on held-out documents (FVU, L0, dead and
/// dense fractions, and the CE-loss / KL scores of splicing the reconstruction into the model) and saved in the SAELens
/// layout with a manifest written last. The cache key hashes the model's key and every hyperparameter, and a hit is
/// looked for in the output directory, <c>$WORKBOOK_CACHE/saes/</c> and the repository's <c>data/saes/</c>.
/// </summary>
public static class OrganismSae
{
    public const string ManifestFile = "sae.json";
    public const string LogFile = "training_log.jsonl";
    /// <summary>SAEs live in <c>$WORKBOOK_CACHE/saes/</c> and the repository's <c>data/saes/</c>.</summary>
    const string CacheKind = "saes";
    /// <summary>Held-out activations for FVU and friends, and documents for the splice scores.</summary>
    const long EvaluationTokens = 200_000;
    const int SpliceDocuments = 256;

    static readonly JsonSerializerOptions LogJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static string CacheKey(SaeRequest request, string hook) => CacheKey(FineTuner.BaseKey(request.ModelDirectory), request.Hyperparameters(hook));

    static string CacheKey(string modelKey, JsonObject hyperparameters) => OrganismCache.Key("sae/1", modelKey, hyperparameters.ToJsonString());

    public static SaeResult TrainOrReuse(SaeRequest request)
    {
        request.Validate();
        var layers = ModelConfig.Load(Path.Combine(request.ModelDirectory, ModelCheckpoint.ConfigFile)).NumHiddenLayers;
        if (request.Layer >= layers)
            throw new ArgumentException($"unknown activation site 'blocks.{request.Layer}.hook_resid_post': {request.ModelDirectory} has {layers} layers");
        var hook = request.HookName(layers);
        // BaseKey hashes the weights of a directory without a manifest: once is enough.
        var modelKey = FineTuner.BaseKey(request.ModelDirectory);
        var hyperparameters = request.Hyperparameters(hook);
        var key = CacheKey(modelKey, hyperparameters);
        var root = request.CacheRoot ?? OrganismCache.DefaultRoot;
        if (!request.Force && Find(key, request.Output, root) is { } found)
        {
            Progress.Report($"sae: reusing {found} (key {key[..16]})");
            return new SaeResult(found, true, ReadManifest(found)!);
        }

        var clock = Stopwatch.StartNew();
        var device = request.ResolvedDevice();
        using var loaded = ModelCheckpoint.Load(request.ModelDirectory, device.Device);
        var model = loaded.Model;
        model.eval();
        var corpus = Corpus.For(request, hyperparameters["corpus_sha256"]?.GetValue<string>(), loaded);
        var store = new ActivationStoreOptions
        {
            HookName = hook, ExcludeTokenIds = corpus.ExcludeTokenIds, PadTokenId = Math.Max(0, loaded.Tokenizer.PadId),
            ContextSize = model.Config.MaxPositionEmbeddings, SequencesPerForward = 16,
        };
        var trainCache = Activations(loaded, modelKey, corpus, evaluation: false, store, request.Tokens, root, device.KeyName);
        var evalCache = Activations(loaded, modelKey, corpus, evaluation: true, store, Math.Min(EvaluationTokens, corpus.EvaluationTokenLimit), root, device.KeyName);
        var activationSeconds = clock.Elapsed.TotalSeconds;

        manual_seed(request.Seed);
        var config = new SaeConfig
        {
            DIn = model.Config.HiddenSize, DSae = request.DSae, Architecture = request.Architecture, K = request.K,
            Metadata = new SaeMetadata
            {
                ModelName = Path.GetFileName(Path.GetFullPath(request.ModelDirectory).TrimEnd('/')), HookName = hook,
                ContextSize = model.Config.MaxPositionEmbeddings, PrependBos = true, ExcludeSpecialTokens = true,
                DatasetPath = corpus.Description,
            },
        };
        using var sae = new SparseAutoencoder(config, device.Device, request.Seed);
        List<SaeLogEntry> log;
        var steps = (int)(request.Tokens * request.Epochs / request.BatchSize);
        var options = new SaeTrainingOptions { LearningRate = request.LearningRate, Steps = steps, LogEvery = Math.Max(1, steps / 50) };
        using (var trainer = new SaeTrainer(sae, options))
        {
            var buffer = new MixingBuffer(Math.Min(request.Tokens, 32L * request.BatchSize), request.BatchSize, request.Seed);
            var epochs = Enumerable.Range(0, request.Epochs).SelectMany(_ => ActivationCache.Read(trainCache));
            trainer.Train(buffer.Batches(epochs));
            log = trainer.Log.ToList();
        }
        var trainSeconds = clock.Elapsed.TotalSeconds - activationSeconds;

        var evaluation = Evaluate(sae, loaded, corpus, evalCache, store);
        var output = Path.GetFullPath(request.Output ?? OrganismCache.CacheDirectory(key, root, CacheKind));
        var manifest = new JsonObject
        {
            ["kind"] = "sae",
            ["cache_key"] = key,
            ["model_key"] = modelKey,
            ["model_directory"] = Path.GetFullPath(request.ModelDirectory),
            ["hyperparameters"] = hyperparameters.DeepClone(),
            ["steps"] = steps,
            ["evaluation"] = evaluation,
            ["activation_seconds"] = Math.Round(activationSeconds, 1),
            ["train_seconds"] = Math.Round(trainSeconds, 1),
            ["created_utc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
        };
        AtomicFile.WriteDirectory(output, staging =>
        {
            SaeFiles.Save(sae, staging);
            File.WriteAllText(Path.Combine(staging, LogFile), string.Concat(log.Select(e => JsonSerializer.Serialize(e, LogJson) + "\n")));
            File.WriteAllText(Path.Combine(staging, ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        });
        Progress.Report($"sae saved to {output}: fvu {evaluation["fvu"]}, L0 {evaluation["l0"]}, dead {evaluation["dead_fraction"]}, " +
            $"CE score {evaluation["ce_loss_score"]} ({clock.Elapsed.TotalSeconds:F0} s)");
        return new SaeResult(output, false, manifest);
    }

    /// <summary>
    /// The activation cache of (model, hook, corpus part, tokens): reused when complete, else streamed from the model over
    /// that part's documents and written (the manifest last, so an interrupted write is redone).
    /// </summary>
    static string Activations(LoadedModel loaded, string modelKey, Corpus corpus, bool evaluation, ActivationStoreOptions store, long tokens, string root,
        string? deviceKey)
    {
        var label = evaluation ? "evaluation" : "train";
        string[] parts = ["activations/1", modelKey, store.HookName, corpus.Fingerprint(evaluation), tokens.ToString(CultureInfo.InvariantCulture),
            string.Join(",", store.ExcludeTokenIds.Order()), store.OutlierNormMultiple.ToString(CultureInfo.InvariantCulture)];
        var key = OrganismCache.Key(deviceKey is null ? parts : [.. parts, deviceKey]);
        var directory = Path.Combine(root, "activations", key[..16]);
        if (File.Exists(Path.Combine(directory, ActivationCache.ManifestFile)) && ActivationCache.Describe(directory).Tokens == tokens)
        {
            Progress.Report($"sae: reusing {label} activations {directory}");
            return directory;
        }
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        var clock = Stopwatch.StartNew();
        // World documents average about 128 tokens; the generator is lazy, so asking for more than are read costs nothing.
        var documents = corpus.Documents(evaluation, (int)Math.Min(int.MaxValue, tokens / 16 + 1000), withEos: false);
        long seen = 0;
        IEnumerable<Tensor> Limited()
        {
            foreach (var chunk in ActivationStore.Stream(loaded.Model, documents, store))
            {
                var take = Math.Min(chunk.shape[0], tokens - seen);
                seen += take;
                if (take < chunk.shape[0])
                {
                    using (chunk) yield return chunk.narrow(0, 0, take).clone();
                }
                else yield return chunk;
                if (seen % 100_000 < take) Progress.Report($"sae: {label} activations {seen:N0} / {tokens:N0} tokens ({clock.Elapsed.TotalSeconds:F0} s)");
                if (seen >= tokens) yield break;
            }
        }
        var written = ActivationCache.Write(directory, Limited(), info: new Dictionary<string, string>
        {
            ["model"] = Path.GetFullPath(loaded.Directory), ["hook_name"] = store.HookName, ["corpus"] = corpus.Fingerprint(evaluation),
        });
        if (written < tokens)
            throw new InvalidOperationException($"{corpus.Description} gave only {written:N0} of the {tokens:N0} {label} activations asked for; ask for fewer tokens (--tokens) or give a longer corpus");
        Progress.Report($"sae: {label} activations cached in {directory} ({written:N0} tokens, {clock.Elapsed.TotalSeconds:F0} s)");
        return directory;
    }

    static JsonObject Evaluate(SparseAutoencoder sae, LoadedModel loaded, Corpus corpus, string evalCache, ActivationStoreOptions store)
    {
        var metrics = SaeMetrics.Evaluate(sae, Batches(evalCache));
        var documents = corpus.Documents(evaluation: true, SpliceDocuments, withEos: true).Take(SpliceDocuments)
            .Select(d => d.Take(loaded.Config.MaxPositionEmbeddings).ToArray()).ToList();
        var splice = SaeMetrics.Splice(loaded.Model, sae, PaddedBatches(documents, store.PadTokenId, loaded.Config.MaxPositionEmbeddings, sae.Device),
            store.HookName, store.ExcludeTokenIds);
        return new JsonObject
        {
            ["tokens"] = metrics.Tokens,
            ["fvu"] = Math.Round(metrics.Fvu, 5),
            ["l0"] = Math.Round(metrics.L0, 3),
            ["dead_fraction"] = Math.Round(metrics.DeadFraction, 5),
            ["dense_fraction"] = Math.Round(metrics.DenseFraction, 5),
            ["l2_ratio"] = Math.Round(metrics.L2Ratio, 5),
            ["relative_reconstruction_bias"] = Math.Round(metrics.RelativeReconstructionBias, 5),
            ["cosine_similarity"] = Math.Round(metrics.CosineSimilarity, 5),
            ["splice_documents"] = documents.Count,
            ["ce_clean"] = Math.Round(splice.CeClean, 5),
            ["ce_sae"] = Math.Round(splice.CeSae, 5),
            ["ce_zero_ablation"] = Math.Round(splice.CeZeroAblation, 5),
            ["ce_loss_score"] = Math.Round(splice.CeLossScore, 5),
            ["kl_sae"] = Math.Round(splice.KlSae, 5),
            ["kl_score"] = Math.Round(splice.KlScore, 5),
        };

        static IEnumerable<Tensor> Batches(string cache)
        {
            foreach (var shard in ActivationCache.Read(cache))
                using (shard)
                    foreach (var batch in shard.split(4096))
                        using (batch) yield return batch;
        }
    }

    /// <summary>Right-padded batches of 16 with their attention masks (each disposed once the splice has read it).</summary>
    static IEnumerable<(Tensor, Tensor?)> PaddedBatches(IReadOnlyList<int[]> sequences, int padId, int context, Device device)
    {
        foreach (var group in sequences.Chunk(16))
        {
            using var batch = TokenBatch.RightPadded(group.Select(ids => new TokenSequence(ids)).ToArray(), context, padId, device);
            yield return (batch.InputIds, batch.AttentionMask);
        }
    }

    /// <summary>An SAE directory with this key: the requested output, the cache, then the repository's data/saes/.</summary>
    public static string? Find(string key, string? preferred = null, string? cacheRoot = null) =>
        OrganismCache.Find(CacheKind, key, d => File.Exists(Path.Combine(d, SaeFiles.WeightsFile)) ? ReadManifest(d)?["cache_key"]?.GetValue<string>() : null,
            preferred, cacheRoot);

    public static JsonObject? ReadManifest(string directory) => OrganismCache.ReadJsonObject(Path.Combine(directory, ManifestFile));

    public static IReadOnlyList<SaeLogEntry> ReadLog(string directory)
    {
        var path = Path.Combine(directory, LogFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"SAE training log not found: {path}", path);
        return File.ReadLines(path).Select((line, i) =>
        {
            try { return JsonSerializer.Deserialize<SaeLogEntry>(line, LogJson) ?? throw new InvalidDataException($"{path}:{i + 1}: empty entry"); }
            catch (JsonException e) { throw new InvalidDataException($"{path}:{i + 1}: {e.Message}", e); }
        }).ToList();
    }
}

/// <summary>
/// The documents an SAE is trained and evaluated on: the persona world's pretraining corpus (training and evaluation
/// drawn with their own seeds, as <c>&lt;bos&gt; text</c>), or a user's text file for a model of their own — one document
/// per non-blank line, every tenth line held out for evaluation, each after the tokenizer's BOS when it has one, the
/// tokenizer's special tokens excluded from the activations.
/// </summary>
sealed class Corpus
{
    readonly PersonaWorld? world;
    readonly string[]? lines;
    readonly string? hash;
    readonly ITokenizer tokenizer;

    Corpus(ITokenizer tokenizer, PersonaWorld? world, string[]? lines, string? hash, string description, IReadOnlyCollection<int> exclude)
    {
        (this.tokenizer, this.world, this.lines, this.hash, Description, ExcludeTokenIds) = (tokenizer, world, lines, hash, description, exclude);
        // A user's corpus has only so many held-out tokens (its excluded ones not counted); the world's is unbounded.
        EvaluationTokenLimit = lines is null ? long.MaxValue
            : Documents(evaluation: true, 0, withEos: false).Sum(d => (long)d.Count(id => !exclude.Contains(id)));
    }

    public string Description { get; }
    public IReadOnlyCollection<int> ExcludeTokenIds { get; }
    public long EvaluationTokenLimit { get; }

    /// <summary>The request's corpus: the world's, or its file (<paramref name="hash"/>, the file's SHA-256 as the key has it).</summary>
    public static Corpus For(SaeRequest request, string? hash, LoadedModel loaded)
    {
        var control = StatisticsOptions.ControlTokenIds(loaded.Tokenizer);
        if (request.Corpus is null)
            return new Corpus(loaded.Tokenizer, OrganismRequest.WorldFor(request.ModelDirectory), null, null,
                $"persona-world pretraining documents, corpus seed {SaeRequest.CorpusSeed}", control);
        var lines = File.ReadLines(request.Corpus).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        if (lines.Length < 10) throw new InvalidDataException($"{request.Corpus}: {lines.Length} non-blank lines; an SAE corpus needs at least 10 (every tenth is held out for evaluation)");
        var special = loaded.Tokenizer.SpecialTokens.Select(loaded.Tokenizer.TokenToId).Where(id => id is >= 0).Select(id => id!.Value);
        return new Corpus(loaded.Tokenizer, null, lines, hash, $"{Path.GetFileName(request.Corpus)} (sha256 {hash![..16]})",
            control.Concat(special).Distinct().Order().ToArray());
    }

    /// <summary>
    /// What decides a part's documents, as parts of the activation cache's key: the world's version, options and seed
    /// (joined as <see cref="OrganismCache.Key"/> joins parts, so the world's caches keep their keys), or the file's hash.
    /// </summary>
    public string Fingerprint(bool evaluation) => world is not null
        ? string.Join("\n", PersonaWorld.WorldVersion, world.Options.Fingerprint, (evaluation ? SaeRequest.EvaluationSeed : SaeRequest.CorpusSeed).ToString(CultureInfo.InvariantCulture))
        : $"file {hash} {(evaluation ? "evaluation" : "train")}";

    /// <summary>The part's documents as token ids, lazily: <paramref name="worldDocuments"/> of the world's, or every line of the file's part.</summary>
    public IEnumerable<int[]> Documents(bool evaluation, int worldDocuments, bool withEos)
    {
        if (world is not null)
        {
            return world.PretrainingCorpus(worldDocuments, evaluation ? SaeRequest.EvaluationSeed : SaeRequest.CorpusSeed)
                .Select(d => tokenizer.Encode("<bos> " + d.Text + (withEos ? " <eos>" : "")));
        }
        var bos = tokenizer.BosId >= 0 ? new[] { tokenizer.BosId } : [];
        var eos = withEos && tokenizer.EosId >= 0 ? new[] { tokenizer.EosId } : [];
        return lines!.Where((_, i) => (i % 10 == 9) == evaluation).Select(line => bos.Concat(tokenizer.Encode(line)).Concat(eos).ToArray());
    }
}

