using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace PersonaWorkbook.Models;

/// <summary>
/// The Hugging Face <c>config.json</c> of a Llama-family decoder (model_type "llama" or "qwen2").
/// Property names are the HF field names, so a real checkpoint's config loads as is and ours load in Python.
/// Fields this library does not use are kept in <see cref="Extra"/> and written back unchanged.
/// </summary>
public sealed class ModelConfig
{
    [JsonPropertyName("model_type")] public string ModelType { get; set; } = "llama";
    [JsonPropertyName("architectures")] public string[] Architectures { get; set; } = ["LlamaForCausalLM"];
    [JsonPropertyName("vocab_size")] public int VocabSize { get; set; } = 2048;
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; set; } = 256;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; set; } = 688;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; set; } = 4;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; set; } = 8;
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; set; } = 4;
    /// <summary>Null means hidden_size / num_attention_heads, as in HF.</summary>
    [JsonPropertyName("head_dim")] public int? HeadDimOverride { get; set; }
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; set; } = 128;
    [JsonPropertyName("rope_theta")] public double RopeTheta { get; set; } = 10000.0;
    [JsonPropertyName("rms_norm_eps")] public double RmsNormEps { get; set; } = 1e-5;
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; set; }
    /// <summary>q/k/v biases: false for Llama; Qwen2 has them and its config omits the field.</summary>
    [JsonPropertyName("attention_bias")] public bool? AttentionBias { get; set; }
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; set; } = "silu";
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; set; }
    [JsonPropertyName("eos_token_id")] public JsonNode? EosTokenIdNode { get; set; }
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; set; }
    [JsonPropertyName("torch_dtype")] public string TorchDtype { get; set; } = "float32";
    [JsonPropertyName("rope_scaling")] public JsonNode? RopeScaling { get; set; }

    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }

    [JsonIgnore] public int NumKvHeads => NumKeyValueHeads ?? NumAttentionHeads;
    [JsonIgnore] public int HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;
    [JsonIgnore] public bool QkvBias => AttentionBias ?? ModelType == "qwen2";

    /// <summary>eos_token_id may be a number or a list in HF configs.</summary>
    [JsonIgnore]
    public int[] EosTokenIds
    {
        get => EosTokenIdNode switch
        {
            null => [],
            JsonArray a => a.Select(n => n!.GetValue<int>()).ToArray(),
            var v => [v.GetValue<int>()],
        };
        set => EosTokenIdNode = value.Length == 1 ? JsonValue.Create(value[0]) : new JsonArray(value.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());
    }

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Checks the invariants the model code relies on; names the offending field.</summary>
    public void Validate(string source = "config")
    {
        void Require(bool ok, string field, string why)
        {
            if (!ok) throw new InvalidDataException($"{source}: field '{field}' {why}");
        }
        Require(ModelType is "llama" or "qwen2" or "mistral", "model_type", $"is '{ModelType}'; supported: llama, qwen2, mistral");
        Require(VocabSize > 0, "vocab_size", "must be positive");
        Require(HiddenSize > 0, "hidden_size", "must be positive");
        Require(IntermediateSize > 0, "intermediate_size", "must be positive");
        Require(NumHiddenLayers > 0, "num_hidden_layers", "must be positive");
        Require(NumAttentionHeads > 0, "num_attention_heads", "must be positive");
        Require(NumKvHeads > 0 && NumAttentionHeads % NumKvHeads == 0, "num_key_value_heads",
            $"({NumKvHeads}) must divide num_attention_heads ({NumAttentionHeads})");
        Require(HeadDimOverride is not null || HiddenSize % NumAttentionHeads == 0, "hidden_size",
            $"({HiddenSize}) must be divisible by num_attention_heads ({NumAttentionHeads})");
        Require(HeadDim % 2 == 0, "head_dim", $"({HeadDim}) must be even for rotary embeddings");
        Require(HiddenAct is "silu" or "swish", "hidden_act", $"is '{HiddenAct}'; only silu (SwiGLU) is supported");
        Require(RopeTheta > 0, "rope_theta", "must be positive");
        Require(RopeScaling is null || RopeScaling.GetValueKind() == JsonValueKind.Null
                || (RopeScaling["rope_type"] ?? RopeScaling["type"])?.GetValue<string>() == "default",
            "rope_scaling", "is not supported (only the default rotary embedding)");
    }

    public static ModelConfig FromJson(string json, string source = "config.json")
    {
        JsonNode? node;
        try { node = JsonNode.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message})", e); }
        if (node is not JsonObject obj) throw new InvalidDataException($"{source}: expected a JSON object");
        foreach (var required in new[] { "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads" })
            if (!obj.ContainsKey(required)) throw new InvalidDataException($"{source}: missing required field '{required}'");
        ModelConfig config;
        try { config = obj.Deserialize<ModelConfig>(Json)!; }
        catch (JsonException e) { throw new InvalidDataException($"{source}: field '{e.Path?.TrimStart('$', '.')}' has the wrong type ({e.Message})", e); }
        if (!obj.ContainsKey("num_key_value_heads")) config.NumKeyValueHeads = null;
        config.Validate(source);
        return config;
    }

    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"model config not found: {path}", path);
        return FromJson(File.ReadAllText(path), path);
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());

    public ModelConfig Clone() => FromJson(ToJson());
}
