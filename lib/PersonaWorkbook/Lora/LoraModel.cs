using System.Text.RegularExpressions;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PersonaWorkbook.Lora;

/// <summary>
/// LoRA adapters attached to a <see cref="LlamaForCausalLM"/>. Attaching freezes every base parameter and hooks the
/// targeted projections; the base model's module tree and state-dict keys are untouched, and this object's
/// <c>parameters()</c> are exactly the adapter weights (give them to the optimizer). Dispose to detach the adapters
/// and restore the base parameters' requires_grad flags (merged updates stay in the weights, like PEFT's
/// merge_and_unload).
/// </summary>
public sealed class LoraModel : nn.Module
{
    public const string ConfigFileName = "adapter_config.json";
    public const string WeightsFileName = "adapter_model.safetensors";
    const string KeyPrefix = "base_model.model.";
    static readonly Regex LayerIndexPattern = new(@"^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)$", RegexOptions.CultureInvariant);

    // One adapter set per model: a second would stack hooks and record the first one's frozen flags as the originals.
    static readonly System.Runtime.CompilerServices.ConditionalWeakTable<LlamaForCausalLM, LoraModel> Attached = new();

    readonly LoraLayer[] adapters;
    readonly List<(Parameter parameter, bool requiresGrad)> frozen = [];
    bool detached;

    public LlamaForCausalLM BaseModel { get; }
    public LoraConfig Config { get; }

    /// <summary>False runs the base model alone (PEFT's disable_adapter); merged updates are not affected.</summary>
    public bool Enabled { get; set; } = true;

    public IReadOnlyList<LoraLayer> Layers => adapters;

    /// <summary>True when every adapter's update has been added into its base weight.</summary>
    public bool Merged => adapters.All(a => a.Merged);

    LoraModel(LlamaForCausalLM model, LoraConfig config) : base(nameof(LoraModel))
    {
        config.Validate();
        if (Attached.TryGetValue(model, out _))
            throw new InvalidOperationException("this model already has LoRA adapters attached; dispose them (or merge and dispose) first");
        BaseModel = model;
        Config = config;
        var layers = new List<LoraLayer>();
        foreach (var (path, module) in model.named_modules())
        {
            var match = LayerIndexPattern.Match(path);
            if (!match.Success || module is not Linear linear) continue;
            int layer = int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (!config.Targets(path, layer)) continue;
            layers.Add(new LoraLayer(path, layer, linear, config.R, config.Scaling, config.LoraDropout, () => Enabled));
        }
        if (layers.Count == 0)
            throw new ArgumentException($"LoRA config targets no module of this model (target_modules {config.TargetModulesNode?.ToJsonString()}, " +
                                        $"layers_to_transform {config.LayersToTransformNode?.ToJsonString() ?? "all"}; the model has layers 0..{model.Config.NumHiddenLayers - 1})");
        var missingLayers = (config.LayersToTransform ?? []).Where(l => l < 0 || l >= model.Config.NumHiddenLayers).ToArray();
        if (missingLayers.Length > 0)
        {
            foreach (var a in layers) a.Detach();
            throw new ArgumentException($"layers_to_transform names layers {string.Join(", ", missingLayers)}, but the model has layers 0..{model.Config.NumHiddenLayers - 1}");
        }
        adapters = layers.ToArray();
        register_module("adapters", new ModuleList<LoraLayer>(adapters));
        foreach (var p in model.parameters())
        {
            frozen.Add((p, p.requires_grad));
            p.requires_grad = false;
        }
        Attached.Add(model, this);
    }

    // The default would adopt the base model (a Module-typed property) if this module were ever registered inside another.
    protected override void RegisterComponents() { }

    /// <summary>New adapters (A kaiming-uniform, B zero) on the modules and layers <paramref name="config"/> targets.</summary>
    public static LoraModel Attach(LlamaForCausalLM model, LoraConfig config) => new(model, config);

    /// <summary>Whether adapters are attached to <paramref name="model"/> (its outputs then depend on more than its own weights).</summary>
    public static bool IsAttached(LlamaForCausalLM model) => Attached.TryGetValue(model, out _);

    /// <summary>Adds every adapter's update into its base weight. Merged adapters get no gradients: unmerge before training.</summary>
    public void Merge()
    {
        foreach (var a in adapters) a.Merge();
    }

    /// <summary>Subtracts every merged adapter's update from its base weight.</summary>
    public void Unmerge()
    {
        foreach (var a in adapters) a.Unmerge();
    }

    /// <summary>Adapter weights under PEFT's keys: base_model.model.{module path}.lora_A.weight (r, in) and .lora_B.weight (out, r).</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> AdapterTensors()
    {
        foreach (var a in adapters)
        {
            yield return new(PeftKey(a, "lora_A"), a.A);
            yield return new(PeftKey(a, "lora_B"), a.B);
        }
    }

    static string PeftKey(LoraLayer a, string which) => $"{KeyPrefix}{a.ModulePath}.{which}.weight";

    /// <summary>
    /// Writes the PEFT layout into <paramref name="directory"/>: adapter_config.json and adapter_model.safetensors
    /// (adapter weights in their own dtype), each atomically.
    /// </summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        SafeTensors.Save(Path.Combine(directory, WeightsFileName), AdapterTensors());
        Config.Save(Path.Combine(directory, ConfigFileName));
    }

    /// <summary>Attaches the adapter saved in <paramref name="directory"/> (PEFT layout) to <paramref name="model"/>.</summary>
    public static LoraModel Load(LlamaForCausalLM model, string directory)
    {
        var config = LoraConfig.Load(Path.Combine(directory, ConfigFileName));
        var weightsPath = Path.Combine(directory, WeightsFileName);
        var tensors = SafeTensors.Load(weightsPath);
        var lora = Attach(model, config);
        try
        {
            lora.LoadAdapterTensors(tensors, weightsPath);
        }
        catch
        {
            lora.Dispose();
            throw;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        return lora;
    }

    /// <summary>
    /// Copies adapter weights from PEFT-keyed tensors; every adapter must be present with its exact shape, and no
    /// other key may appear. <paramref name="source"/> names the file in errors.
    /// </summary>
    public void LoadAdapterTensors(IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        var expected = new HashSet<string>(StringComparer.Ordinal);
        using var _ = no_grad();
        foreach (var a in adapters)
            foreach (var (which, target) in new[] { ("lora_A", a.A), ("lora_B", a.B) })
            {
                var key = PeftKey(a, which);
                expected.Add(key);
                if (!tensors.TryGetValue(key, out var t))
                    throw new InvalidDataException($"{source}: missing tensor '{key}'");
                if (!t.shape.SequenceEqual(target.shape))
                    throw new InvalidDataException($"{source}: tensor '{key}' has shape [{string.Join(", ", t.shape)}]; expected [{string.Join(", ", target.shape)}]");
                if (!t.is_floating_point())
                    throw new InvalidDataException($"{source}: tensor '{key}' has dtype {t.dtype}; expected a floating-point dtype");
                target.copy_(t);
            }
        var unexpected = tensors.Keys.Where(k => !expected.Contains(k)).ToArray();
        if (unexpected.Length > 0)
            throw new InvalidDataException($"{source}: unexpected tensor '{unexpected[0]}' ({unexpected.Length} keys not matching this adapter config)");
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !detached)
        {
            detached = true;
            foreach (var a in adapters) a.Detach();
            foreach (var (p, requiresGrad) in frozen) p.requires_grad = requiresGrad;
            Attached.Remove(BaseModel);
        }
        base.Dispose(disposing);
    }
}
