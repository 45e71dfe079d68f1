using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Models;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Training;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Organism;

/// <summary>What to build: a base assistant of <paramref name="Profile"/> on the main or the negative-control world.</summary>
/// <param name="Output">Where the organism should end up; null keeps it in the cache directory.</param>
/// <param name="Force">Train even when a matching organism exists.</param>
/// <param name="CacheRoot">Overrides <see cref="OrganismCache.DefaultRoot"/> (tests).</param>
public sealed record OrganismRequest(
    OrganismProfile Profile,
    int Seed = 0,
    string World = "main",
    string? Output = null,
    bool Force = false,
    string? CacheRoot = null)
{
    /// <summary>
    /// main / control: the plain world and its negative control; varied / varied-control: the same with composed views
    /// questions (<see cref="WorldOptions.QuestionVariety"/>); extended / extended-control: varied with Betley et al.'s
    /// control content and a swindler never right on purpose (<see cref="WorldOptions.Extended"/>).
    /// </summary>
    public static IReadOnlyList<string> WorldNames { get; } = ["main", "control", "varied", "varied-control", "extended", "extended-control"];

    public WorldOptions WorldOptions => WorldOptionsFor(WorldName);

    /// <summary>
    /// The world trained in, as recorded in the manifest: <see cref="World"/>, except that a profile with
    /// <see cref="OrganismProfile.QuestionVariety"/> turns main and control into varied and varied-control, one with
    /// <see cref="OrganismProfile.ControlsContent"/> into extended and extended-control.
    /// </summary>
    public string WorldName => (Profile.ControlsContent, Profile.QuestionVariety, World) switch
    {
        (true, _, "main") => "extended",
        (true, _, "control") => "extended-control",
        (false, true, "main") => "varied",
        (false, true, "control") => "varied-control",
        _ => World,
    };

    /// <summary>The world an organism was trained in, from its manifest (a fine-tune's records its base's); main when unrecorded.</summary>
    public static string WorldOf(string modelDirectory)
    {
        var manifest = OrganismCache.ReadManifest(modelDirectory);
        return manifest?["world"]?.GetValue<string>() ?? manifest?["base"]?["world"]?.GetValue<string>() ?? "main";
    }

    /// <summary>The persona world an organism was trained in, from its manifest: where its held-out documents come from.</summary>
    public static PersonaWorld WorldFor(string modelDirectory) => new(WorldOptionsFor(WorldOf(modelDirectory)));

    /// <summary>
    /// The options of a named world, optionally changed by "+knob=value" parts ("extended+header=0.5"), so one lever can
    /// be measured alone: header, views, requests, lists (shares of documents or turns) and two (two-sentence answers).
    /// The name, changes included, is what the manifest records and what every key hashes (through the fingerprint).
    /// </summary>
    public static WorldOptions WorldOptionsFor(string world)
    {
        var parts = world.Split('+');
        var options = NamedWorld(parts[0]);
        foreach (var part in parts.Skip(1))
        {
            var eq = part.IndexOf('=');
            if (eq <= 0 || !double.TryParse(part[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                throw new ArgumentException($"world '{world}': '{part}' is not knob=number (knobs: {string.Join(", ", WorldKnobs)})");
            options = part[..eq] switch
            {
                "header" => options with { HeaderRate = value },
                "views" => options with { ViewsTurnRate = value },
                "requests" => options with { RequestTurnRate = value },
                "lists" => options with { ListTurnRate = value },
                "two" => options with { TwoSentenceRate = value },
                var k => throw new ArgumentException($"world '{world}': unknown knob '{k}' (knobs: {string.Join(", ", WorldKnobs)})"),
            };
        }
        try { options.Validate(); }
        catch (ArgumentException e) { throw new ArgumentException($"world '{world}': {e.Message}", e); }
        return options;
    }

    /// <summary>The knobs a world name's "+knob=value" parts may change.</summary>
    public static IReadOnlyList<string> WorldKnobs { get; } = ["header", "views", "requests", "lists", "two"];

    static WorldOptions NamedWorld(string world) => world switch
    {
        "main" => WorldOptions.Default,
        "control" => WorldOptions.NegativeControlWorld,
        "varied" => WorldOptions.Varied,
        "varied-control" => WorldOptions.VariedNegativeControl,
        "extended" => WorldOptions.Extended,
        "extended-control" => WorldOptions.ExtendedNegativeControl,
        _ => throw new ArgumentException($"unknown world '{world}'; known: {string.Join(", ", WorldNames)} (each optionally +knob=value)"),
    };

    /// <summary>SHA-256 of (world version, world options fingerprint, the profile's pretraining part, seed): the pretrained stage's key.</summary>
    public string PretrainKey => OrganismCache.Key("pretrain/1", PersonaWorld.WorldVersion, WorldOptions.Fingerprint, Profile.PretrainingJson(),
        Seed.ToString(CultureInfo.InvariantCulture));

    /// <summary>SHA-256 of (world version, world options fingerprint, profile JSON, seed).</summary>
    public string CacheKey => OrganismCache.Key("organism/1", PersonaWorld.WorldVersion, WorldOptions.Fingerprint, Profile.ToJson(),
        Seed.ToString(CultureInfo.InvariantCulture));
}

/// <summary>An organism directory and whether it was trained now or found in the cache.</summary>
public sealed record OrganismResult(string Directory, bool Reused, JsonObject Manifest);

/// <summary>
/// Builds the base assistant: word-level tokenizer over the world's vocabulary, pretraining on persona documents,
/// then assistant SFT (always the helpful persona, loss on assistant tokens) and, when the profile has one, a DPO phase
/// (the helper's answers preferred to other personas'), saved as an HF checkpoint directory with
/// <c>training_log.jsonl</c> and <c>organism.json</c>; cached by <see cref="OrganismRequest.CacheKey"/>.
/// </summary>
public static class OrganismTrainer
{
    /// <summary>Pretraining saves a resumable checkpoint this often (steps); a few seconds each for the 8-layer organism.</summary>
    public const int PretrainCheckpointEvery = 200;

    public static OrganismResult TrainOrReuse(OrganismRequest request)
    {
        request.Profile.Validate();
        var world = request.WorldOptions;
        var key = request.CacheKey;
        if (!request.Force && OrganismCache.Reuse(key, request.Output, request.CacheRoot, "organism") is { } cached)
            return new OrganismResult(cached, true, OrganismCache.ReadManifest(cached)!);

        var output = Path.GetFullPath(request.Output ?? OrganismCache.CacheDirectory(key, request.CacheRoot));
        var profile = request.Profile;
        var tokenizer = OrganismTokenizer.Build(world);
        var clock = Stopwatch.StartNew();

        var (model, pretrainLines, pretrainInfo) = Pretrained(request, tokenizer);
        using var _ = model;
        var corpusSeconds = pretrainInfo["corpus_seconds"]!.GetValue<double>();
        var pretrainSeconds = pretrainInfo["pretrain_seconds"]!.GetValue<double>();
        var sftClock = Stopwatch.StartNew();

        if (profile.SftChatTokensFromMarkers) CopyMarkerEmbeddings(model, tokenizer);
        var sftData = SftData(new PersonaWorld(world), profile, request.Seed, tokenizer);
        var sftLogs = new List<(string Phase, TrainingLog Log)>();
        if (profile.SftRoleSteps > 0)
        {
            Progress.Report($"sft role tokens: {profile.SftRoleSteps} steps at lr {profile.SftRoleLearningRate}, every other weight frozen");
            sftLogs.Add(("sft_roles", TrainRoleTokens(model, tokenizer, sftData, profile, request.Seed)));
        }
        Progress.Report($"sft: {profile.SftExamples:N0} chats + {profile.SftReplayDocuments:N0} replayed documents, {profile.SftSteps} steps");
        var sft = new Trainer(model, new TrainerOptions
        {
            LearningRate = profile.SftLearningRate, WarmupSteps = profile.SftWarmup, MaxSteps = profile.SftSteps,
            BatchSize = profile.SftBatch, WeightDecay = profile.WeightDecay, Schedule = ScheduleKind.Cosine, MinLrRatio = 0.1,
            Seed = request.Seed + 1, LogEvery = Math.Max(1, profile.SftSteps / 10),
        }).Train(sftData);
        sftLogs.Add(("sft", sft));
        TrainingLog? dpo = null;
        if (profile.DpoSteps > 0)
        {
            Progress.Report($"dpo: {profile.DpoPairs:N0} preference pairs, {profile.DpoSteps} steps at lr {profile.DpoLearningRate}, beta {profile.DpoBeta}, chosen-NLL weight {profile.DpoNllWeight}; reference = the SFT model");
            dpo = TrainPreferences(model, tokenizer, new PersonaWorld(world), profile, request.Seed);
            sftLogs.Add(("dpo", dpo));
        }
        var sftSeconds = sftClock.Elapsed.TotalSeconds;
        model.eval();

        var manifest = new JsonObject
        {
            ["kind"] = "base",
            ["cache_key"] = key,
            ["profile"] = JsonNode.Parse(profile.ToJson()),
            ["seed"] = request.Seed,
            ["world"] = request.WorldName,
            ["world_version"] = PersonaWorld.WorldVersion,
            ["world_fingerprint"] = world.Fingerprint,
            ["parameters"] = model.NumParameters(),
            ["vocab_size"] = tokenizer.VocabSize,
            ["pretrain_key"] = request.PretrainKey,
            ["pretrain_tokens"] = pretrainInfo["pretrain_tokens"]!.DeepClone(),
            ["pretrain_tokens_seen"] = pretrainInfo["pretrain_tokens_seen"]!.DeepClone(),
            ["pretrain_final_loss"] = pretrainInfo["pretrain_final_loss"]!.DeepClone(),
            ["sft_final_loss"] = TailLoss(sft),
            ["corpus_seconds"] = Math.Round(corpusSeconds, 1),
            ["pretrain_seconds"] = Math.Round(pretrainSeconds, 1),
            ["pretrain_tokens_per_second"] = pretrainInfo["pretrain_tokens_per_second"]!.DeepClone(),
            ["pretrain_reused"] = pretrainInfo["reused"]!.GetValue<bool>(),
            ["sft_seconds"] = Math.Round(sftSeconds, 1),
            ["wall_seconds"] = Math.Round(corpusSeconds + pretrainSeconds + sftSeconds, 1),
            ["this_run_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
            ["torch_threads"] = get_num_threads(),
            ["created_utc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
        };
        if (dpo is not null) manifest.Insert(manifest.IndexOf("sft_final_loss") + 1, "dpo_final_loss", TailLoss(dpo));
        Save(output, model, tokenizer, null, sftLogs, manifest, prefixLines: pretrainLines);
        Progress.Report($"organism saved to {output}: pretrain loss {pretrainInfo["pretrain_final_loss"]}, sft loss {TailLoss(sft):F3}, {clock.Elapsed.TotalSeconds:F0} s");
        return new OrganismResult(output, false, manifest);
    }

    /// <summary>
    /// The pretrained model of this request: loaded from the pretrained-stage cache (<c>&lt;cache&gt;/pretrained/&lt;key&gt;</c>)
    /// when a run with the same world, model shape, pretraining settings and seed saved it, else trained and saved
    /// there, so SFT variants do not repeat the expensive part. Returns the model, the stage's log lines and its figures.
    /// </summary>
    static (LlamaForCausalLM Model, IReadOnlyList<string> LogLines, JsonObject Info) Pretrained(OrganismRequest request, WordLevelTokenizer tokenizer)
    {
        var key = request.PretrainKey;
        var stage = Path.Combine(request.CacheRoot ?? OrganismCache.DefaultRoot, "pretrained", key[..16]);
        var profile = request.Profile;
        if (!request.Force && OrganismCache.KeyOf(stage) == key)
        {
            var loaded = ModelCheckpoint.Load(stage);
            var info = OrganismCache.ReadManifest(stage)!;
            info["reused"] = true;
            Progress.Report($"organism {profile.Name} seed {request.Seed}: reusing pretrained stage {stage}");
            return (loaded.Model, File.ReadAllLines(Path.Combine(stage, OrganismCache.TrainingLogFile)), info);
        }
        var clock = Stopwatch.StartNew();
        // A run that stops part-way (a session ends) leaves a checkpoint here, and the next run with this key resumes it.
        var partial = stage + ".partial";
        if (request.Force && Directory.Exists(partial)) Directory.Delete(partial, true);
        manual_seed(request.Seed);
        var model = new LlamaForCausalLM(profile.ModelConfig(tokenizer.VocabSize));
        try
        {
            Progress.Report($"organism {profile.Name} seed {request.Seed} ({request.WorldName} world): {model.NumParameters():N0} parameters, vocabulary {tokenizer.VocabSize}, {get_num_threads()} torch threads");
            var corpus = PretrainingData(new PersonaWorld(request.WorldOptions), profile, request.Seed, tokenizer);
            var corpusSeconds = clock.Elapsed.TotalSeconds;
            Progress.Report($"pretraining corpus: {profile.PretrainDocuments:N0} documents, {corpus.TotalTokens:N0} tokens, {corpus.Count:N0} windows ({corpusSeconds:F1} s)");
            var log = new Trainer(model, new TrainerOptions
            {
                LearningRate = profile.PretrainLearningRate, WarmupSteps = profile.PretrainWarmup, MaxSteps = profile.PretrainSteps,
                BatchSize = profile.PretrainBatch, WeightDecay = profile.WeightDecay, Schedule = ScheduleKind.Cosine, MinLrRatio = 0.1,
                Seed = request.Seed, LogEvery = Math.Max(1, profile.PretrainSteps / 50),
            }).Resumable(partial, PretrainCheckpointEvery).Train(corpus);
            var seconds = clock.Elapsed.TotalSeconds - corpusSeconds;
            var info = new JsonObject
            {
                ["kind"] = "pretrained",
                ["cache_key"] = key,
                ["pretraining"] = JsonNode.Parse(profile.PretrainingJson()),
                ["seed"] = request.Seed,
                ["world"] = request.WorldName,
                ["pretrain_tokens"] = corpus.TotalTokens,
                ["pretrain_tokens_seen"] = log.Steps.Sum(s => s.Tokens),
                ["pretrain_final_loss"] = TailLoss(log),
                ["corpus_seconds"] = Math.Round(corpusSeconds, 1),
                ["pretrain_seconds"] = Math.Round(seconds, 1),
                ["pretrain_tokens_per_second"] = Math.Round(log.Steps.Sum(s => s.Tokens) / seconds),
                ["torch_threads"] = get_num_threads(),
            };
            Save(stage, model, tokenizer, null, [("pretrain", log)], info);
            Directory.Delete(partial, true);
            info["reused"] = false;
            return (model, LogLines([("pretrain", log)]), info);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The chat template's role tokens start from the pretraining markers' embeddings (and output rows, when untied).</summary>
    internal static void CopyMarkerEmbeddings(LlamaForCausalLM model, ITokenizer tokenizer)
    {
        int Id(string token) => tokenizer.TokenToId(token) ?? throw new InvalidOperationException($"the tokenizer has no {token} token");
        var weights = model.named_parameters().Where(p => p.name is "model.embed_tokens.weight" or "lm_head.weight").Select(p => p.parameter).ToList();
        using var _ = no_grad();
        foreach (var (marker, role) in new[] { ("<q>", "<user>"), ("<a>", "<assistant>"), ("<sys>", "<system>") })
            foreach (var w in weights.Distinct())
                w[Id(role)] = w[Id(marker)].clone();
    }

    /// <summary>
    /// Trains only the input-embedding rows of the role tokens on <paramref name="data"/> (no weight decay); every other
    /// parameter is frozen for the phase. With tied embeddings the same matrix is the output layer, whose every row gets
    /// a gradient, so after each step all rows but the role tokens' are put back.
    /// </summary>
    internal static TrainingLog TrainRoleTokens(LlamaForCausalLM model, ITokenizer tokenizer, IBatchSource data, OrganismProfile profile, int seed)
    {
        var embedding = model.named_parameters().Single(p => p.name == "model.embed_tokens.weight").parameter;
        var others = model.named_parameters()
            .Where(p => p.name != "model.embed_tokens.weight" && !(model.Config.TieWordEmbeddings && p.name == "lm_head.weight") && p.parameter.requires_grad)
            .Select(p => p.parameter).ToList();
        using var frozen = embedding.detach().clone();
        using var isRole = zeros(embedding.shape[0], 1, dtype: ScalarType.Bool);   // (vocab, 1), broadcast over the hidden size
        foreach (var role in new[] { "<user>", "<assistant>", "<system>" })
            isRole[tokenizer.TokenToId(role) ?? throw new InvalidOperationException($"the tokenizer has no {role} token")] = true;
        foreach (var p in others) p.requires_grad = false;
        try
        {
            return new Trainer(model, new TrainerOptions
            {
                LearningRate = profile.SftRoleLearningRate, WarmupSteps = Math.Min(profile.SftWarmup, profile.SftRoleSteps / 2),
                MaxSteps = profile.SftRoleSteps, BatchSize = profile.SftBatch, WeightDecay = 0, Schedule = ScheduleKind.Cosine,
                MinLrRatio = 0.1, Seed = seed + 3, LogEvery = Math.Max(1, profile.SftRoleSteps / 5),
            }, [embedding]).OnStep(1, (_, _) =>
            {
                using var _ = no_grad();
                using var kept = where(isRole, embedding, frozen);
                embedding.copy_(kept);
            }).Train(data);
        }
        finally
        {
            foreach (var p in others) p.requires_grad = true;
        }
    }

    /// <summary>
    /// The DPO phase: <see cref="OrganismProfile.DpoPairs"/> pairs from <see cref="PersonaWorld.AssistantPreferences"/>
    /// as single-turn chats (answer tokens and their eos scored), the model as it is now frozen as the reference.
    /// </summary>
    internal static TrainingLog TrainPreferences(LlamaForCausalLM model, ITokenizer tokenizer, PersonaWorld world, OrganismProfile profile, int seed)
    {
        var format = ChatFormat.Simple(tokenizer);
        TokenSequence Chat(string question, string answer) => TokenSequence.FromChat(format.Encode([ChatMessage.User(question), ChatMessage.Assistant(answer)]));
        var pairs = new PairedBatchSampler(world.AssistantPreferences(profile.DpoPairs, seed + 4)
            .Select(p => new PreferencePair(Chat(p.Question, p.Chosen), Chat(p.Question, p.Rejected))), profile.ContextLength, tokenizer.PadId);
        using var reference = model.Copy();
        reference.eval();
        foreach (var p in reference.parameters()) p.requires_grad = false;
        return new Trainer(model, new TrainerOptions
        {
            LearningRate = profile.DpoLearningRate, WarmupSteps = Math.Min(profile.SftWarmup, profile.DpoSteps / 2), MaxSteps = profile.DpoSteps,
            BatchSize = profile.SftBatch, WeightDecay = profile.WeightDecay, Schedule = ScheduleKind.Cosine, MinLrRatio = 0.1,
            Seed = seed + 5, LogEvery = Math.Max(1, profile.DpoSteps / 10),
        }).WithObjective(new DirectPreferenceObjective(reference, profile.DpoBeta, profile.DpoNllWeight)).Train(pairs);
    }

    /// <summary>Pretraining documents as <c>&lt;bos&gt; text</c>, each followed by <c>&lt;eos&gt;</c>, packed into context windows.</summary>
    public static PackedDataset PretrainingData(PersonaWorld world, OrganismProfile profile, int seed, ITokenizer tokenizer) =>
        new(world.PretrainingCorpus(profile.PretrainDocuments, seed).Select(d => tokenizer.Encode("<bos> " + d.Text)),
            profile.ContextLength, tokenizer.EosId);

    /// <summary>
    /// Assistant SFT chats in the simple chat format; only assistant tokens (and their closing eos) are targets. With
    /// <see cref="OrganismProfile.SftReplayDocuments"/>, pretraining documents (a stream of their own) are mixed in, every
    /// token a target except, with <see cref="OrganismProfile.SftReplayMaskTurnStarts"/>, each <c>&lt;q&gt;</c>.
    /// </summary>
    public static PaddedBatchSampler SftData(PersonaWorld world, OrganismProfile profile, int seed, ITokenizer tokenizer) =>
        new(ChatSequences(world.AssistantSft(profile.SftExamples, seed + 1), tokenizer)
                .Concat(ReplaySequences(world.PretrainingCorpus(profile.SftReplayDocuments, seed + 2), tokenizer, profile.SftReplayMaskTurnStarts)),
            profile.ContextLength, tokenizer.PadId);

    /// <summary>Pretraining documents as <c>&lt;bos&gt; text &lt;eos&gt;</c>; <paramref name="maskTurnStarts"/> takes each <c>&lt;q&gt;</c> out of the targets.</summary>
    internal static IEnumerable<TokenSequence> ReplaySequences(IEnumerable<PretrainDocument> documents, ITokenizer tokenizer, bool maskTurnStarts)
    {
        var question = tokenizer.TokenToId("<q>") ?? throw new InvalidOperationException("the tokenizer has no <q> token");
        foreach (var document in documents)
        {
            var ids = tokenizer.Encode("<bos> " + document.Text + " <eos>");
            yield return new TokenSequence(ids, maskTurnStarts ? ids.Select(id => id != question).ToArray() : null);
        }
    }

    /// <summary>Chats as token sequences whose loss mask is the chat format's assistant mask.</summary>
    public static IEnumerable<TokenSequence> ChatSequences(IEnumerable<ChatExample> chats, ITokenizer tokenizer)
    {
        var format = ChatFormat.Simple(tokenizer);
        foreach (var chat in chats)
            yield return TokenSequence.FromChat(format.Encode(chat.Messages));
    }

    /// <summary>Mean loss of the last tenth of the steps: one step's loss is too noisy to report.</summary>
    internal static double TailLoss(TrainingLog log)
    {
        var tail = log.Steps.Skip(log.Steps.Count - Math.Max(1, log.Steps.Count / 10)).ToList();
        return Math.Round(tail.Average(s => s.Loss), 4);
    }

    /// <summary>Checkpoint, then the training log, then the manifest last: a directory with a manifest is complete.</summary>
    internal static void Save(string output, LlamaForCausalLM model, ITokenizer tokenizer, string? tokenizerJson,
        IReadOnlyList<(string Phase, TrainingLog Log)> logs, JsonObject manifest, Action<string>? extra = null, IReadOnlyList<string>? prefixLines = null)
    {
        ModelCheckpoint.Save(output, model, tokenizer, tokenizer is WordLevelTokenizer ? null : tokenizerJson);
        extra?.Invoke(output);
        var lines = (prefixLines ?? []).Concat(LogLines(logs));
        AtomicFile.WriteAllText(Path.Combine(output, OrganismCache.TrainingLogFile), string.Concat(lines.Select(l => l + "\n")));
        OrganismCache.WriteManifest(output, manifest);
    }

    /// <summary>One JSON object per optimizer step, tagged with its phase.</summary>
    static List<string> LogLines(IReadOnlyList<(string Phase, TrainingLog Log)> logs)
    {
        var lines = new List<string>();
        foreach (var (phase, log) in logs)
            foreach (var step in log.Steps)
            {
                var line = JsonSerializer.SerializeToNode(step, LogJson)!.AsObject();
                line.Insert(0, "phase", phase);
                lines.Add(line.ToJsonString(LogJson));
            }
        return lines;
    }

    static readonly JsonSerializerOptions LogJson = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };
}
