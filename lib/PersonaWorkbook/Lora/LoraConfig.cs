using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace PersonaWorkbook.Lora;

/// <summary>
/// PEFT's <c>adapter_config.json</c> for a LoRA adapter. Property names are PEFT's field names, so an adapter saved
/// here loads with <c>PeftModel.from_pretrained</c> and a PEFT adapter's config loads here. Fields this library does
/// not interpret are kept in <see cref="Extra"/> and written back unchanged.
/// </summary>
public sealed class LoraConfig
{
    /// <summary>Module types of a Llama decoder layer that can carry an adapter.</summary>
    public static readonly IReadOnlyList<string> ProjectionNames =
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    [JsonPropertyName("peft_type")] public string PeftType { get; set; } = "LORA";
    [JsonPropertyName("task_type")] public string TaskType { get; set; } = "CAUSAL_LM";
    [JsonPropertyName("base_model_name_or_path")] public string? BaseModelNameOrPath { get; set; }
    [JsonPropertyName("r")] public int R { get; set; } = 8;
    [JsonPropertyName("lora_alpha")] public double LoraAlpha { get; set; } = 8;
    [JsonPropertyName("lora_dropout")] public double LoraDropout { get; set; }
    [JsonPropertyName("use_rslora")] public bool UseRsLora { get; set; }
    [JsonPropertyName("bias")] public string Bias { get; set; } = "none";
    [JsonPropertyName("fan_in_fan_out")] public bool FanInFanOut { get; set; }
    [JsonPropertyName("inference_mode")] public bool InferenceMode { get; set; } = true;
    [JsonPropertyName("init_lora_weights")] public bool InitLoraWeights { get; set; } = true;
    [JsonPropertyName("use_dora")] public bool UseDora { get; set; }

    /// <summary>PEFT allows a list of module names or one string, which is a regular expression matched against the full module path.</summary>
    [JsonPropertyName("target_modules")] public JsonNode? TargetModulesNode { get; set; } = new JsonArray("q_proj", "v_proj");

    /// <summary>PEFT allows an int, a list of ints, or null (every layer).</summary>
    [JsonPropertyName("layers_to_transform")] public JsonNode? LayersToTransformNode { get; set; }

    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }

    /// <summary>Target module names when <c>target_modules</c> is a list; set it to replace the list.</summary>
    [JsonIgnore]
    public IReadOnlyList<string> TargetModules
    {
        get => TargetModulesNode is JsonArray a ? a.Select(n => n!.GetValue<string>()).ToArray() : [];
        set => TargetModulesNode = new JsonArray(value.Select(v => (JsonNode)JsonValue.Create(v)!).ToArray());
    }

    /// <summary>Layer indices to adapt; null means all layers.</summary>
    [JsonIgnore]
    public IReadOnlyList<int>? LayersToTransform
    {
        get => LayersToTransformNode switch
        {
            null => null,
            JsonArray a => a.Select(n => n!.GetValue<int>()).ToArray(),
            var v when v.GetValueKind() == JsonValueKind.Null => null,
            var v => [v.GetValue<int>()],
        };
        set => LayersToTransformNode = value is null ? null : new JsonArray(value.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());
    }

    /// <summary>The factor on B·A: alpha / r, or alpha / √r with rank-stabilised LoRA.</summary>
    [JsonIgnore] public double Scaling => UseRsLora ? LoraAlpha / Math.Sqrt(R) : LoraAlpha / R;

    /// <summary>
    /// Whether the projection at <paramref name="modulePath"/> (e.g. <c>model.layers.3.mlp.down_proj</c>) of layer
    /// <paramref name="layer"/> gets an adapter, following PEFT's matching rules.
    /// </summary>
    public bool Targets(string modulePath, int layer)
    {
        var layers = LayersToTransform;
        if (layers is not null && !layers.Contains(layer)) return false;
        if (TargetModulesNode is JsonArray)
        {
            var leaf = modulePath[(modulePath.LastIndexOf('.') + 1)..];
            return TargetModules.Contains(leaf);
        }
        var pattern = TargetModulesNode!.GetValue<string>();
        // "all-linear" means every linear layer except the output head, which is never a target here anyway.
        return pattern == "all-linear" || Regex.IsMatch(modulePath, $"^(?:{pattern})$");
    }

    /// <summary>Checks the fields this implementation relies on; names the offending field.</summary>
    public void Validate(string source = "adapter_config")
    {
        void Require(bool ok, string field, string why)
        {
            if (!ok) throw new InvalidDataException($"{source}: field '{field}' {why}");
        }
        Require(PeftType == "LORA", "peft_type", $"is '{PeftType}'; only LORA is supported");
        Require(R >= 1, "r", $"is {R}; the rank must be at least 1");
        Require(LoraAlpha > 0, "lora_alpha", "must be positive");
        Require(LoraDropout is >= 0 and < 1, "lora_dropout", $"is {LoraDropout}; must be in [0, 1)");
        Require(Bias == "none", "bias", $"is '{Bias}'; only \"none\" is supported");
        Require(!FanInFanOut, "fan_in_fan_out", "must be false (Llama projections store weights as (out, in))");
        Require(!UseDora, "use_dora", "must be false (DoRA is not implemented)");
        Require(TargetModulesNode is JsonArray || TargetModulesNode?.GetValueKind() == JsonValueKind.String,
            "target_modules", "must be a list of module names or a regular expression string");
        if (TargetModulesNode is JsonArray)
        {
            var unknown = TargetModules.Where(t => !ProjectionNames.Contains(t)).ToArray();
            Require(TargetModules.Count > 0, "target_modules", "is empty");
            Require(unknown.Length == 0, "target_modules", $"names unknown modules {string.Join(", ", unknown)}; known: {string.Join(", ", ProjectionNames)}");
        }
        else
        {
            try { _ = new Regex(TargetModulesNode!.GetValue<string>()); }
            catch (ArgumentException e) { Require(false, "target_modules", $"is not a valid regular expression ({e.Message})"); }
        }
        Require(LayersToTransformNode is null or JsonArray || LayersToTransformNode.GetValueKind() is JsonValueKind.Number or JsonValueKind.Null,
            "layers_to_transform", "must be an integer, a list of integers or null");
    }

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static LoraConfig FromJson(string json, string source = "adapter_config.json")
    {
        LoraConfig? config;
        try { config = JsonSerializer.Deserialize<LoraConfig>(json, Json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: field '{e.Path?.TrimStart('$', '.')}' is invalid ({e.Message})", e); }
        if (config is null) throw new InvalidDataException($"{source}: expected a JSON object");
        config.Validate(source);
        return config;
    }

    public static LoraConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"adapter config not found: {path}", path);
        return FromJson(File.ReadAllText(path), path);
    }

    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());
}
