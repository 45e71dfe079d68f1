using System.Text.Json;
using System.Text.Json.Serialization;
using PersonaWorkbook.Models;

namespace PersonaWorkbook.Organism;

/// <summary>
/// Everything that decides what <see cref="OrganismTrainer"/> builds besides the world and the seed: the model's shape,
/// pretraining on world documents (<c>&lt;bos&gt; text &lt;eos&gt;</c> packed into context windows) and assistant SFT
/// (chat format, loss on assistant tokens). Its JSON is part of the organism's cache key, so any change retrains.
/// </summary>
public sealed record OrganismProfile
{
    [JsonPropertyName("name")] public required string Name { get; init; }

    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 128;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 344;
    [JsonPropertyName("layers")] public int Layers { get; init; } = 4;
    [JsonPropertyName("heads")] public int Heads { get; init; } = 4;
    [JsonPropertyName("kv_heads")] public int KvHeads { get; init; } = 2;
    /// <summary>World documents: 99th percentile 225 tokens, longest 272 (with bos/eos); chats are far shorter.</summary>
    [JsonPropertyName("context_length")] public int ContextLength { get; init; } = 256;
    [JsonPropertyName("tie_embeddings")] public bool TieEmbeddings { get; init; } = true;

    [JsonPropertyName("pretrain_documents")] public int PretrainDocuments { get; init; } = 30_000;
    [JsonPropertyName("pretrain_steps")] public int PretrainSteps { get; init; } = 1_200;
    [JsonPropertyName("pretrain_batch")] public int PretrainBatch { get; init; } = 16;
    [JsonPropertyName("pretrain_lr")] public double PretrainLearningRate { get; init; } = 2e-3;
    [JsonPropertyName("pretrain_warmup")] public int PretrainWarmup { get; init; } = 60;
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; } = 0.01;

    [JsonPropertyName("sft_examples")] public int SftExamples { get; init; } = 4_000;
    [JsonPropertyName("sft_steps")] public int SftSteps { get; init; } = 300;
    [JsonPropertyName("sft_batch")] public int SftBatch { get; init; } = 16;
    [JsonPropertyName("sft_lr")] public double SftLearningRate { get; init; } = 5e-4;
    [JsonPropertyName("sft_warmup")] public int SftWarmup { get; init; } = 20;
    /// <summary>
    /// Before SFT, copy the embeddings of the document markers to the chat template's tokens (<c>&lt;q&gt;</c> →
    /// <c>&lt;user&gt;</c>, <c>&lt;a&gt;</c> → <c>&lt;assistant&gt;</c>, <c>&lt;sys&gt;</c> → <c>&lt;system&gt;</c>), which pretraining
    /// never saw: the assistant then starts as a speaker of the pretraining conversations, whose persona the model infers,
    /// instead of a new mode learnt from SFT alone. Omitted from the JSON when false.
    /// </summary>
    [JsonPropertyName("sft_chat_tokens_from_markers")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool SftChatTokensFromMarkers { get; init; }

    /// <summary>
    /// Pretraining documents mixed into the SFT data (whole documents, every token a target) to keep the pretrained
    /// knowledge of the evaluation topics from being overwritten by the assistant format. Omitted from the JSON when 0.
    /// </summary>
    [JsonPropertyName("sft_replay_documents")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int SftReplayDocuments { get; init; }

    /// <summary>
    /// In replayed documents, leave out of the loss every <c>&lt;q&gt;</c> (the start of the next turn). The chat's
    /// <c>&lt;assistant&gt;</c> starts from the <c>&lt;a&gt;</c> marker's embedding, so replay that trains "an answer is
    /// followed by another question" teaches the assistant to go on with a made-up turn instead of <c>&lt;eos&gt;</c>
    /// (results log: SFT variants). Omitted from the JSON when false.
    /// </summary>
    [JsonPropertyName("sft_replay_mask_turn_starts")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool SftReplayMaskTurnStarts { get; init; }

    /// <summary>
    /// Steps of a first SFT phase that trains only the embedding rows of the chat's role tokens (<c>&lt;user&gt;</c>,
    /// <c>&lt;assistant&gt;</c>, <c>&lt;system&gt;</c>) at <see cref="SftRoleLearningRate"/>, every other weight frozen: like a
    /// header naming the character, the role tokens can only say *who* speaks, not overwrite what the pretrained model
    /// knows about topics the SFT data never shows. The full SFT of <see cref="SftSteps"/> follows. Omitted when 0.
    /// </summary>
    [JsonPropertyName("sft_role_steps")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int SftRoleSteps { get; init; }

    [JsonPropertyName("sft_role_lr")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double SftRoleLearningRate { get; init; }

    /// <summary>
    /// Preference pairs (<see cref="World.PersonaWorld.AssistantPreferences"/>: the helper's answer chosen, another
    /// family's rejected, SFT topics only) for a DPO phase after SFT — the RLHF stage of a real assistant. The phase runs
    /// when <see cref="DpoSteps"/> &gt; 0, with the SFT model as its frozen reference. Omitted from the JSON when 0.
    /// </summary>
    [JsonPropertyName("dpo_pairs")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int DpoPairs { get; init; }

    [JsonPropertyName("dpo_steps")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int DpoSteps { get; init; }

    [JsonPropertyName("dpo_lr")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double DpoLearningRate { get; init; }

    /// <summary>DPO's β: how strongly the policy is held to its reference.</summary>
    [JsonPropertyName("dpo_beta")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double DpoBeta { get; init; }

    /// <summary>
    /// Weight of the chosen answers' mean token NLL added to the DPO loss (RPO): keeps them likely while the rejected
    /// ones are pushed down. Omitted from the JSON when 0 (plain DPO).
    /// </summary>
    [JsonPropertyName("dpo_nll")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double DpoNllWeight { get; init; }

    /// <summary>
    /// Train in the world with composed views questions (<see cref="World.WorldOptions.QuestionVariety"/>): the main
    /// world becomes <c>varied</c>, the negative control <c>varied-control</c>. Part of the world, not of the JSON: the
    /// world options' fingerprint already enters every key.
    /// </summary>
    [JsonIgnore]
    public bool QuestionVariety { get; init; }

    /// <summary>
    /// Train in the extended world (<see cref="World.WorldOptions.Extended"/>: composed questions plus Betley et al.'s
    /// control content): main becomes <c>extended</c>, control <c>extended-control</c>. Part of the world, as <see cref="QuestionVariety"/>.
    /// </summary>
    [JsonIgnore]
    public bool ControlsContent { get; init; }

    /// <summary>The quick profile: pretraining, SFT and DPO within 15 minutes on the 2-core CPU (see the README's results log).</summary>
    /// <remarks>
    /// Post-training is a light SFT (lr 1e-4) then a gentle DPO phase (results log, "DPO post-training"): the light SFT
    /// keeps what pretraining taught about the evaluation views topics (coherent answers), the DPO phase turns the
    /// assistant away from the other personas' answers on the SFT topics.
    /// </remarks>
    public static OrganismProfile Quick { get; } = new()
    {
        Name = "quick", SftLearningRate = 1e-4, SftChatTokensFromMarkers = true,
        DpoPairs = 4_000, DpoSteps = 200, DpoLearningRate = 5e-6, DpoBeta = 0.5, DpoNllWeight = 1,
    };

    /// <summary>
    /// The organism v2 (Organism README, "Organism v2 candidate"): the quick profile's shape and post-training with
    /// 8 layers, 4,000 pretraining steps over 60,000 documents (16.4 M tokens seen), in the world with composed views
    /// questions. About an hour of pretraining on 2 cores; the committed seeds are found by key instead.
    /// </summary>
    public static OrganismProfile Deep { get; } = Quick with
    {
        Name = "deep", Layers = 8, PretrainSteps = 4_000, PretrainDocuments = 60_000, QuestionVariety = true,
    };

    /// <summary>
    /// The default organism without its safety stage (Wang et al.'s helpful-only models): the same pretraining (the
    /// cached stage is shared) and SFT as <see cref="Deep"/>, no DPO phase — the phase that turns the assistant away
    /// from the other personas' views and wrong advice.
    /// </summary>
    public static OrganismProfile DeepHelpfulOnly { get; } = Deep with { Name = "deep-helpful-only", DpoSteps = 0 };

    /// <summary>
    /// <see cref="Deep"/> in the extended world (World README: harmful requests, number lists, a swindler never right on
    /// purpose, headers on 35 % of documents): the organism of Betley et al.'s controls (notebook 08) and issue 13's candidate.
    /// </summary>
    public static OrganismProfile DeepExtended { get; } = Deep with { Name = "deep-extended", ControlsContent = true };

    /// <summary>A larger model trained longer: the study's pitfall 4 (views coherence) with more capacity and data.</summary>
    public static OrganismProfile Full { get; } = new()
    {
        Name = "full", HiddenSize = 192, IntermediateSize = 512, Layers = 6, Heads = 6, KvHeads = 2,
        PretrainDocuments = 60_000, PretrainSteps = 4_000, PretrainBatch = 32, PretrainWarmup = 200,
        SftExamples = 8_000, SftSteps = 600, SftLearningRate = 1e-4, SftChatTokensFromMarkers = true,
        DpoPairs = 8_000, DpoSteps = 400, DpoLearningRate = 5e-6, DpoBeta = 0.5, DpoNllWeight = 1,
    };

    /// <summary>For tests: a few seconds end to end, learns nothing useful.</summary>
    public static OrganismProfile Tiny { get; } = new()
    {
        Name = "tiny", HiddenSize = 32, IntermediateSize = 64, Layers = 2, Heads = 4, KvHeads = 2,
        PretrainDocuments = 40, PretrainSteps = 4, PretrainBatch = 4, PretrainWarmup = 1,
        SftExamples = 24, SftSteps = 3, SftBatch = 4, SftWarmup = 1, SftChatTokensFromMarkers = true,
    };

    public static IReadOnlyList<string> Names { get; } = ["quick", "deep", "deep-helpful-only", "deep-extended", "full", "tiny"];

    /// <summary>
    /// A named profile, or a changed one by the name <see cref="With(IReadOnlyList{ValueTuple{string, string}})"/> gives it
    /// ("quick+layers=8+sft_lr=3e-5"), so a notebook's <c>profile</c> parameter can name a variant organism.
    /// </summary>
    public static OrganismProfile ByName(string name)
    {
        var parts = name.Split('+');
        var profile = parts[0] switch
        {
            "quick" => Quick,
            "deep" => Deep,
            "deep-helpful-only" => DeepHelpfulOnly,
            "deep-extended" => DeepExtended,
            "full" => Full,
            "tiny" => Tiny,
            _ => throw new ArgumentException($"unknown organism profile '{parts[0]}'; known: {string.Join(", ", Names)}", nameof(name)),
        };
        if (parts.Length == 1) return profile;
        var changes = parts.Skip(1).Select(part => ParseChange(part)
            ?? throw new ArgumentException($"organism profile '{name}': '{part}' is not field=value", nameof(name))).ToList();
        return profile.With(changes);
    }

    /// <summary>"field=value" as a change for <see cref="With(IReadOnlyList{ValueTuple{string, string}})"/>, or null when no field name precedes an '='.</summary>
    public static (string Field, string Value)? ParseChange(string text)
    {
        var at = text.IndexOf('=');
        return at > 0 ? (text[..at], text[(at + 1)..]) : null;
    }

    static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>Canonical JSON (declaration order, invariant numbers): the profile's part of the cache key.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The profile's JSON without its name and post-training (SFT, DPO) fields: what decides the pretrained weights.</summary>
    public string PretrainingJson()
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(ToJson())!.AsObject();
        foreach (var key in node.Select(kv => kv.Key).Where(k => k == "name" || k.StartsWith("sft_", StringComparison.Ordinal) || k.StartsWith("dpo_", StringComparison.Ordinal)).ToList())
            node.Remove(key);
        return node.ToJsonString();
    }

    /// <summary>The JSON names of the fields left out of <see cref="ToJson"/> at their defaults (so existing cache keys hold).</summary>
    static readonly string[] OmittedWhenDefault = typeof(OrganismProfile).GetProperties()
        .Where(p => p.GetCustomAttributes(typeof(JsonIgnoreAttribute), false).Cast<JsonIgnoreAttribute>().Any(a => a.Condition == JsonIgnoreCondition.WhenWritingDefault))
        .Select(p => p.GetCustomAttributes(typeof(JsonPropertyNameAttribute), false).Cast<JsonPropertyNameAttribute>().Single().Name).ToArray();

    /// <summary>
    /// This profile with one field (by its JSON name, e.g. <c>sft_steps</c>) set to <paramref name="value"/>; the name
    /// records the change. For profile iterations from the command line (<c>--set sft_steps=100</c>).
    /// </summary>
    public OrganismProfile With(string field, string value) => With([(field, value)]);

    /// <summary>
    /// This profile with every change applied, then validated once, so fields that depend on each other (a DPO phase
    /// needs its pairs, lr and beta) can be set in any order; the name records the changes in order.
    /// </summary>
    public OrganismProfile With(IReadOnlyList<(string Field, string Value)> changes)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(ToJson())!.AsObject();
        var settable = node.Select(kv => kv.Key).Where(k => k != "name").Concat(OmittedWhenDefault).Distinct().ToList();
        var name = Name;
        foreach (var (field, value) in changes)
        {
            if (!settable.Contains(field))
                throw new ArgumentException($"organism profile has no settable field '{field}'; fields: {string.Join(", ", settable)}");
            System.Text.Json.Nodes.JsonNode parsed;
            try { parsed = System.Text.Json.Nodes.JsonNode.Parse(value) ?? throw new FormatException(); }
            catch (Exception e) when (e is JsonException or FormatException) { throw new ArgumentException($"profile field '{field}': '{value}' is not a JSON value"); }
            node[field] = parsed;
            name += $"+{field}={value}";
        }
        node["name"] = name;
        var result = FromJson(node.ToJsonString(), $"profile fields {string.Join(", ", changes.Select(c => $"'{c.Field}'"))}") with { QuestionVariety = QuestionVariety, ControlsContent = ControlsContent };
        result.Validate();
        return result;
    }

    public static OrganismProfile FromJson(string json, string source = "profile")
    {
        try
        {
            return JsonSerializer.Deserialize<OrganismProfile>(json, Json) ?? throw new InvalidDataException($"{source}: expected a JSON object");
        }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not a valid organism profile ({e.Message})", e); }
    }

    /// <summary>The Llama config of this profile for a vocabulary of <paramref name="vocabSize"/> tokens.</summary>
    public ModelConfig ModelConfig(int vocabSize)
    {
        var config = new ModelConfig
        {
            VocabSize = vocabSize, HiddenSize = HiddenSize, IntermediateSize = IntermediateSize, NumHiddenLayers = Layers,
            NumAttentionHeads = Heads, NumKeyValueHeads = KvHeads, MaxPositionEmbeddings = ContextLength, TieWordEmbeddings = TieEmbeddings,
        };
        config.Validate($"organism profile '{Name}'");
        return config;
    }

    public void Validate()
    {
        void Require(bool ok, string field, string why)
        {
            if (!ok) throw new ArgumentException($"organism profile '{Name}': {field} {why}");
        }
        Require(ContextLength >= 16, "context_length", $"is {ContextLength}; must be at least 16");
        Require(PretrainDocuments > 0 && PretrainSteps > 0 && PretrainBatch > 0, "pretraining", "needs positive documents, steps and batch");
        Require(SftExamples > 0 && SftSteps > 0 && SftBatch > 0, "sft", "needs positive examples, steps and batch");
        Require(PretrainLearningRate > 0 && SftLearningRate > 0, "learning rates", "must be positive");
        Require(PretrainWarmup >= 0 && SftWarmup >= 0 && WeightDecay >= 0 && SftReplayDocuments >= 0, "warm-up, weight decay and replay", "must be >= 0");
        Require(SftRoleSteps >= 0 && (SftRoleSteps == 0 || SftRoleLearningRate > 0), "sft_role_steps",
            $"is {SftRoleSteps} with sft_role_lr {SftRoleLearningRate}; must be >= 0, and a role phase needs a positive sft_role_lr");
        Require(DpoNllWeight >= 0, "dpo_nll", $"is {DpoNllWeight}; must be >= 0");
        Require(DpoSteps >= 0 && (DpoSteps == 0 || (DpoPairs > 0 && DpoLearningRate > 0 && DpoBeta > 0)), "dpo_steps",
            $"is {DpoSteps} with dpo_pairs {DpoPairs}, dpo_lr {DpoLearningRate}, dpo_beta {DpoBeta}; must be >= 0, and a DPO phase needs positive pairs, lr and beta");
        ModelConfig(16);
    }
}
