using System.Text.Json;
using System.Text.Json.Nodes;

namespace PersonaWorkbook.Sae;

/// <summary>How an SAE turns pre-activations into latent activations.</summary>
public enum SaeArchitecture
{
    /// <summary>Keep each token's k largest pre-activations (ReLU'd). SAELens "topk".</summary>
    TopK,
    /// <summary>
    /// Training keeps the k·B largest ReLU'd pre-activations over a batch of B tokens; inference uses the learnt
    /// threshold (JumpReLU). Saved as SAELens "jumprelu" with a <c>threshold</c> vector, as SAELens does.
    /// </summary>
    BatchTopK,
    /// <summary>ReLU with an L1 penalty weighted by decoder row norms. SAELens "standard".</summary>
    ReLU,
    /// <summary>Inference-only: f = z·1[z &gt; θ] per latent (what a BatchTopK SAE or a Gemma Scope file loads as).</summary>
    JumpReLU,
}

/// <summary>Where an SAE's training activations came from (SAELens <c>metadata</c>); unknown keys are kept.</summary>
public sealed class SaeMetadata
{
    public string? ModelName { get; set; }
    public string? HookName { get; set; }
    public int? ContextSize { get; set; }
    public bool? PrependBos { get; set; }
    public bool? ExcludeSpecialTokens { get; set; }
    public string? DatasetPath { get; set; }
    /// <summary>Every other metadata key, as read or to be written.</summary>
    public Dictionary<string, JsonNode?> Extra { get; } = new(StringComparer.Ordinal);

    internal JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["sae_lens_version"] = "6.18.0",
            ["sae_lens_training_version"] = "6.18.0",
            ["model_name"] = ModelName,
            ["hook_name"] = HookName,
            ["hook_head_index"] = null,
            ["context_size"] = ContextSize,
            ["prepend_bos"] = PrependBos,
            ["exclude_special_tokens"] = ExcludeSpecialTokens,
            ["dataset_path"] = DatasetPath,
            ["seqpos_slice"] = new JsonArray((JsonNode?)null),
            ["model_from_pretrained_kwargs"] = new JsonObject(),
        };
        foreach (var (key, value) in Extra) o[key] = value?.DeepClone();
        return o;
    }

    internal static SaeMetadata FromJson(JsonObject? o)
    {
        var m = new SaeMetadata();
        if (o is null) return m;
        foreach (var (key, value) in o)
        {
            switch (key)
            {
                case "model_name": m.ModelName = value?.GetValue<string>(); break;
                // SAELens before 6.0 called it hook_point.
                case "hook_name" or "hook_point": m.HookName ??= value?.GetValue<string>(); break;
                case "context_size": m.ContextSize = value?.GetValue<int>(); break;
                case "prepend_bos": m.PrependBos = value?.GetValue<bool>(); break;
                case "exclude_special_tokens": m.ExcludeSpecialTokens = value is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null; break;
                case "dataset_path": m.DatasetPath = value?.GetValue<string>(); break;
                case "sae_lens_version" or "sae_lens_training_version" or "hook_head_index" or "seqpos_slice" or "model_from_pretrained_kwargs": break;
                default: m.Extra[key] = value?.DeepClone(); break;
            }
        }
        return m;
    }
}

/// <summary>
/// One SAE's shape and conventions, in SAELens v6 terms (<c>cfg.json</c>). <see cref="NormalizeActivations"/> is
/// "expected_average_only_in" while an SAE carries an unfolded input scale, "none" once the scale is folded into the
/// weights (always the case in saved files).
/// </summary>
public sealed class SaeConfig
{
    public required int DIn { get; init; }
    public required int DSae { get; init; }
    public required SaeArchitecture Architecture { get; init; }
    /// <summary>Active latents per token (TopK) or on average (BatchTopK); unused for ReLU / JumpReLU.</summary>
    public int K { get; init; }
    public bool ApplyBDecToInput { get; init; } = true;
    public string NormalizeActivations { get; set; } = "none";
    public string DType { get; init; } = "float32";
    public SaeMetadata Metadata { get; init; } = new();

    public string? HookName => Metadata.HookName;

    public void Validate()
    {
        if (DIn <= 0) throw new ArgumentException($"d_in must be positive, got {DIn}");
        if (DSae <= 0) throw new ArgumentException($"d_sae must be positive, got {DSae}");
        if (Architecture is SaeArchitecture.TopK or SaeArchitecture.BatchTopK && (K <= 0 || K > DSae))
            throw new ArgumentException($"k must be in [1, d_sae={DSae}] for {Architecture}, got {K}");
        if (NormalizeActivations is not ("none" or "expected_average_only_in"))
            throw new ArgumentException($"normalize_activations must be 'none' or 'expected_average_only_in', got '{NormalizeActivations}'");
    }

    /// <summary>The SAELens architecture name written to cfg.json (BatchTopK is saved as "jumprelu", as SAELens does).</summary>
    public static string SaeLensName(SaeArchitecture a) => a switch
    {
        SaeArchitecture.TopK => "topk",
        SaeArchitecture.BatchTopK or SaeArchitecture.JumpReLU => "jumprelu",
        SaeArchitecture.ReLU => "standard",
        _ => throw new ArgumentOutOfRangeException(nameof(a)),
    };

    internal JsonObject ToSaeLensJson()
    {
        var metadata = Metadata.ToJson();
        if (Architecture == SaeArchitecture.BatchTopK)
        {
            // SAELens drops this on save; we keep it so our loader and readers know where the threshold came from.
            metadata["trained_architecture"] = "batchtopk";
            metadata["trained_k"] = K;
        }
        var o = new JsonObject
        {
            ["architecture"] = SaeLensName(Architecture),
            ["d_in"] = DIn,
            ["d_sae"] = DSae,
            ["dtype"] = DType,
            ["device"] = "cpu",
            ["apply_b_dec_to_input"] = ApplyBDecToInput,
            ["normalize_activations"] = "none",
            ["reshape_activations"] = "none",
            ["metadata"] = metadata,
        };
        if (Architecture == SaeArchitecture.TopK)
        {
            o["k"] = K;
            o["rescale_acts_by_decoder_norm"] = false;
        }
        return o;
    }

    /// <summary>Reads a SAELens cfg.json (v6, or the older flat layout with hook_point); errors name the file and field.</summary>
    public static SaeConfig FromSaeLensJson(string json, string path)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("not a JSON object"); }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            throw new InvalidDataException($"{path}: not a valid SAE config: {e.Message}", e);
        }
        T Field<T>(string name) => o[name] is JsonValue v ? Read<T>(name, v) : throw new InvalidDataException($"{path}: missing field '{name}'");
        T Optional<T>(string name, T fallback) => o[name] is JsonValue v ? Read<T>(name, v) : fallback;
        T Read<T>(string name, JsonValue v)
        {
            try { return v.GetValue<T>(); }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{path}: field '{name}' is {v.ToJsonString()}, expected a {typeof(T).Name}", e);
            }
        }
        var (dIn, dSae) = (Field<int>("d_in"), Field<int>("d_sae"));
        var archName = Optional("architecture", "standard");
        var metadata = SaeMetadata.FromJson(o["metadata"] as JsonObject);
        // Pre-6.0 configs keep hook and model fields at the top level.
        metadata.HookName ??= o["hook_name"]?.GetValue<string>() ?? o["hook_point"]?.GetValue<string>();
        metadata.ModelName ??= o["model_name"]?.GetValue<string>();
        var architecture = archName switch
        {
            "topk" => SaeArchitecture.TopK,
            "standard" => SaeArchitecture.ReLU,
            "jumprelu" => SaeArchitecture.JumpReLU,
            _ => throw new InvalidDataException($"{path}: architecture '{archName}' is not supported (topk, standard, jumprelu)"),
        };
        var k = architecture == SaeArchitecture.TopK ? Field<int>("k")
            : metadata.Extra.TryGetValue("trained_k", out var tk) && tk is JsonValue tv ? tv.GetValue<int>() : 0;
        var config = new SaeConfig
        {
            DIn = dIn,
            DSae = dSae,
            Architecture = architecture,
            K = k,
            ApplyBDecToInput = Optional("apply_b_dec_to_input", true),
            NormalizeActivations = Optional("normalize_activations", "none"),
            DType = Optional("dtype", "float32"),
            Metadata = metadata,
        };
        if (architecture == SaeArchitecture.TopK && Optional("rescale_acts_by_decoder_norm", false))
            throw new InvalidDataException($"{path}: rescale_acts_by_decoder_norm=true is not supported; fold the decoder norms first (SAELens fold_W_dec_norm)");
        if (config.NormalizeActivations != "none")
            throw new InvalidDataException($"{path}: normalize_activations='{config.NormalizeActivations}' is not supported on load; only files with the scale folded in ('none')");
        try { config.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
        return config;
    }

    internal static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
