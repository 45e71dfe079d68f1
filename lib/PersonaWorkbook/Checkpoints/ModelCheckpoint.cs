using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Models;
using PersonaWorkbook.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Checkpoints;

/// <summary>A model loaded from a checkpoint directory, with its tokenizer and generation defaults.</summary>
public sealed record LoadedModel(LlamaForCausalLM Model, ITokenizer Tokenizer, string Directory, JsonObject? GenerationConfig) : IDisposable
{
    public ModelConfig Config => Model.Config;
    public void Dispose() => Model.Dispose();
}

/// <summary>
/// A Hugging Face style checkpoint directory: <c>config.json</c>, <c>model.safetensors</c> (or shards plus
/// <c>model.safetensors.index.json</c>), <c>tokenizer.json</c> and <c>generation_config.json</c>. Key names are the
/// model's state-dict keys, which are HF's, so Python's transformers reads it as a LlamaForCausalLM / Qwen2ForCausalLM.
/// </summary>
public static class ModelCheckpoint
{
    public const string ConfigFile = "config.json";
    public const string TokenizerFile = "tokenizer.json";
    public const string GenerationConfigFile = "generation_config.json";

    /// <summary>
    /// Writes the directory as a whole: everything goes to a sibling temp directory first, which then replaces
    /// <paramref name="directory"/>, so a crash never leaves a half-written checkpoint.
    /// </summary>
    /// <param name="tokenizerJson">For tokenizers other than <see cref="WordLevelTokenizer"/>: the tokenizer.json to copy.</param>
    public static void Save(string directory, LlamaForCausalLM model, ITokenizer tokenizer, string? tokenizerJson = null,
        IReadOnlyDictionary<string, string>? metadata = null, long maxShardBytes = 2L << 30)
    {
        AtomicFile.WriteDirectory(directory, staging =>
        {
            var config = model.Config.Clone();
            var dtype = model.parameters().First().dtype;
            config.TorchDtype = dtype switch
            {
                ScalarType.BFloat16 => "bfloat16",
                ScalarType.Float16 => "float16",
                _ => "float32",
            };
            config.BosTokenId = tokenizer.BosId >= 0 ? tokenizer.BosId : config.BosTokenId;
            if (tokenizer.EosId >= 0 && config.EosTokenIds.Length == 0) config.EosTokenIds = [tokenizer.EosId];
            config.PadTokenId = tokenizer.PadId >= 0 ? tokenizer.PadId : config.PadTokenId;
            config.Save(Path.Combine(staging, ConfigFile));

            // HF drops the tied head on save; loading re-ties it.
            var tensors = model.state_dict()
                .Where(kv => !(config.TieWordEmbeddings && kv.Key == "lm_head.weight"))
                .Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.detach().cpu()));
            var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>()) { ["format"] = "pt" };
            SafeTensors.SaveSharded(staging, tensors, maxShardBytes, meta);

            var tokenizerPath = Path.Combine(staging, TokenizerFile);
            if (tokenizer is WordLevelTokenizer wordLevel) wordLevel.Save(tokenizerPath);
            else if (tokenizerJson is not null) File.Copy(tokenizerJson, tokenizerPath);
            else throw new ArgumentException($"cannot save a {tokenizer.GetType().Name} by itself; pass the tokenizer.json it was loaded from");

            var generation = new JsonObject
            {
                ["bos_token_id"] = config.BosTokenId,
                ["eos_token_id"] = config.EosTokenIdNode?.DeepClone(),
                ["pad_token_id"] = config.PadTokenId,
                ["do_sample"] = true,
                ["temperature"] = 1.0,
                ["top_p"] = 1.0,
                ["transformers_version"] = "4.46.0",
            };
            AtomicFile.WriteAllText(Path.Combine(staging, GenerationConfigFile), generation.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        });
    }

    /// <summary>
    /// Loads a checkpoint directory. Errors name the file, and for tensors the tensor with expected and found shape.
    /// </summary>
    public static LoadedModel Load(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"checkpoint directory not found: {directory}");
        var config = ModelConfig.Load(Path.Combine(directory, ConfigFile));
        var tokenizerPath = Path.Combine(directory, TokenizerFile);
        if (!File.Exists(tokenizerPath)) throw new FileNotFoundException($"checkpoint {directory} has no {TokenizerFile}", tokenizerPath);
        var tokenizer = HfTokenizer.Load(tokenizerPath);
        if (tokenizer.VocabSize > config.VocabSize)
            throw new CheckpointException($"{tokenizerPath}: tokenizer has {tokenizer.VocabSize} tokens but {Path.Combine(directory, ConfigFile)} says vocab_size {config.VocabSize}");

        JsonObject? generation = null;
        var generationPath = Path.Combine(directory, GenerationConfigFile);
        if (File.Exists(generationPath))
        {
            try { generation = JsonNode.Parse(File.ReadAllText(generationPath)) as JsonObject; }
            catch (JsonException e) { throw new CheckpointException($"{generationPath}: not valid JSON ({e.Message})", e); }
        }

        var model = new LlamaForCausalLM(config);
        try
        {
            var tensors = SafeTensors.LoadCheckpoint(directory);
            try
            {
                var source = File.Exists(Path.Combine(directory, SafeTensors.IndexFileName))
                    ? Path.Combine(directory, SafeTensors.IndexFileName)
                    : Path.Combine(directory, SafeTensors.SingleFileName);
                StateDict.Load(model, tensors, source, strict: true, optionalKeys: config.TieWordEmbeddings ? ["lm_head.weight"] : null);
            }
            finally
            {
                foreach (var t in tensors.Values) t.Dispose();
            }
            if (device is not null || dtype != ScalarType.Float32) model.to(device ?? CPU, dtype);
            model.eval();
            return new LoadedModel(model, tokenizer, Path.GetFullPath(directory), generation);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>True when the directory has the files a checkpoint needs.</summary>
    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, ConfigFile)) && File.Exists(Path.Combine(directory, TokenizerFile))
        && (File.Exists(Path.Combine(directory, SafeTensors.SingleFileName)) || File.Exists(Path.Combine(directory, SafeTensors.IndexFileName)));
}
