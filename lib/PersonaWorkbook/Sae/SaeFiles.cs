using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>
/// SAE folders in SAELens v6 layout: <c>cfg.json</c> + <c>sae_weights.safetensors</c> (W_enc [d_in, d_sae], b_enc,
/// W_dec [d_sae, d_in], b_dec, and <c>threshold</c> [d_sae] for JumpReLU). The input scale is folded in on save, so
/// saved SAEs take raw activations. BatchTopK is saved as "jumprelu" with its threshold in every entry (as SAELens
/// does) and metadata.trained_architecture = "batchtopk"; it loads back as <see cref="SaeArchitecture.JumpReLU"/>.
/// Also reads sparsify folders (cfg.json + sae.safetensors), deciding W_dec's orientation by shape.
/// </summary>
public static class SaeFiles
{
    public const string ConfigFile = "cfg.json";
    public const string WeightsFile = "sae_weights.safetensors";
    public const string SparsifyWeightsFile = "sae.safetensors";

    public static void Save(SparseAutoencoder sae, string directory)
    {
        Directory.CreateDirectory(directory);
        var tensors = sae.FoldedStateDict();
        try
        {
            SafeTensors.Save(Path.Combine(directory, WeightsFile), tensors);
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
        }
        var json = sae.Config.ToSaeLensJson().ToJsonString(SaeConfig.Indented);
        PersonaWorkbook.AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), json + "\n");
    }

    /// <summary>Loads a SAELens folder; shapes are checked against cfg.json and errors name the file and tensor.</summary>
    public static SparseAutoencoder Load(string directory, Device? device = null)
    {
        var configPath = Path.Combine(directory, ConfigFile);
        var weightsPath = Path.Combine(directory, WeightsFile);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"SAE config not found: {configPath}", configPath);
        var config = SaeConfig.FromSaeLensJson(File.ReadAllText(configPath), configPath);
        using var scope = NewDisposeScope();
        var tensors = SafeTensors.Load(weightsPath);
        try
        {
            var (d, s) = (config.DIn, config.DSae);
            var wEnc = Take(tensors, "W_enc", [d, s], weightsPath);
            var wDec = Take(tensors, "W_dec", [s, d], weightsPath);
            var bEnc = Take(tensors, "b_enc", [s], weightsPath);
            var bDec = Take(tensors, "b_dec", [d], weightsPath);
            var threshold = config.Architecture == SaeArchitecture.JumpReLU ? Take(tensors, "threshold", [s], weightsPath) : null;
            var sae = new SparseAutoencoder(config, device);
            sae.LoadWeights(wEnc, bEnc, wDec, bDec, threshold);
            sae.SourceDirectory = Path.GetFullPath(directory);
            return sae;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Loads a sparsify (EleutherAI) TopK SAE folder: encoder.weight [d_sae, d_in], encoder.bias, W_dec, b_dec.
    /// sparsify has stored W_dec as [d_sae, d_in] while SAELens' converter transposes it, so the orientation is decided
    /// by shape (a square W_dec is taken as [d_sae, d_in], sparsify's current layout).
    /// </summary>
    public static SparseAutoencoder LoadSparsify(string directory, string? hookName = null, Device? device = null)
    {
        var configPath = Path.Combine(directory, ConfigFile);
        var weightsPath = Path.Combine(directory, SparsifyWeightsFile);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"sparsify config not found: {configPath}", configPath);
        var cfg = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new InvalidDataException($"{configPath}: not a JSON object");
        using var scope = NewDisposeScope();
        var tensors = SafeTensors.Load(weightsPath);
        try
        {
            if (!tensors.TryGetValue("encoder.weight", out var encoder) || encoder.shape.Length != 2)
                throw new InvalidDataException($"{weightsPath}: tensor 'encoder.weight' is missing or not a matrix");
            var (s, d) = ((int)encoder.shape[0], (int)encoder.shape[1]);
            if (cfg["d_in"] is JsonValue din && din.GetValue<int>() != d)
                throw new InvalidDataException($"{weightsPath}: tensor 'encoder.weight' is [{s}, {d}] but {configPath} says d_in={din}");
            var k = cfg["k"] is JsonValue kv ? kv.GetValue<int>() : throw new InvalidDataException($"{configPath}: missing field 'k'");
            if (!tensors.TryGetValue("W_dec", out var wDec) || wDec.shape.Length != 2)
                throw new InvalidDataException($"{weightsPath}: tensor 'W_dec' is missing or not a matrix");
            Tensor decoder;
            if (wDec.shape[0] == s && wDec.shape[1] == d) decoder = wDec;
            else if (wDec.shape[0] == d && wDec.shape[1] == s) decoder = wDec.t();
            else throw new InvalidDataException($"{weightsPath}: tensor 'W_dec' is [{string.Join(", ", wDec.shape)}]; expected [{s}, {d}] or its transpose");
            var config = new SaeConfig
            {
                DIn = d, DSae = s, K = k, Architecture = SaeArchitecture.TopK,
                Metadata = new SaeMetadata { HookName = hookName },
            };
            var sae = new SparseAutoencoder(config, device);
            sae.LoadWeights(encoder.t(), Take(tensors, "encoder.bias", [s], weightsPath), decoder, Take(tensors, "b_dec", [d], weightsPath), null);
            return sae;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    static Tensor Take(Dictionary<string, Tensor> tensors, string name, long[] expected, string path)
    {
        if (!tensors.TryGetValue(name, out var t))
            throw new InvalidDataException($"{path}: tensor '{name}' is missing (has: {string.Join(", ", tensors.Keys)})");
        if (!t.shape.SequenceEqual(expected))
        {
            var transposed = expected.Length == 2 && t.shape.Length == 2 && t.shape[0] == expected[1] && t.shape[1] == expected[0];
            throw new InvalidDataException($"{path}: tensor '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", expected)}]"
                                           + (transposed ? " — it is stored transposed" : ""));
        }
        if (!t.is_floating_point()) throw new InvalidDataException($"{path}: tensor '{name}' is {t.dtype}, expected a floating-point type");
        return t.to_type(ScalarType.Float32);
    }
}
