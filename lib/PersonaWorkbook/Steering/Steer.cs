using PersonaWorkbook.Diffing;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Models;
using PersonaWorkbook.Sae;
using static TorchSharp.torch;

namespace PersonaWorkbook.Steering;

/// <summary>
/// Steering and directional ablation as scopes over <see cref="Interventions"/>: each call returns one handle, and
/// disposing it restores the model. Hooks stay active through <see cref="Generation.TextGenerator"/>, which marks the
/// generated tokens as response positions, so <see cref="Positions.Response"/> steers only what the model writes.
/// </summary>
public static class Steer
{
    /// <summary>Latent <paramref name="latent"/>'s decoder row (d_in), a detached copy, as the SAE stores it (not normalised).</summary>
    public static Tensor DecoderRow(SparseAutoencoder sae, int latent)
    {
        if (latent < 0 || latent >= sae.Config.DSae) throw new ArgumentOutOfRangeException(nameof(latent), $"latent {latent} is outside the SAE's {sae.Config.DSae} latents");
        return sae.W_dec[latent].detach().clone();
    }

    /// <summary>A persona vector's direction at one layer (d_model).</summary>
    public static Tensor PersonaDirection(PersonaVector vector, int layer)
    {
        if (layer < 0 || layer >= vector.Layers.Length) throw new ArgumentOutOfRangeException(nameof(layer), $"layer {layer} is outside the persona vector's {vector.Layers.Length} layers");
        return vector.Layer(layer);
    }

    /// <summary>Adds <c>scale.Vector(direction, alpha)</c> at <paramref name="site"/> on the chosen positions until disposed.</summary>
    public static IDisposable Add(LlamaForCausalLM model, string site, Tensor direction, double alpha, SteeringScale? scale = null, Positions positions = Positions.All)
    {
        using var scope = NewDisposeScope();
        return Interventions.AddVector(model.Hooks, site, (scale ?? SteeringScale.Raw).Vector(direction, alpha), 1.0, positions);
    }

    /// <summary>Adds an already scaled vector (d_model) at <paramref name="site"/> until disposed.</summary>
    public static IDisposable AddVector(LlamaForCausalLM model, string site, Tensor vector, Positions positions = Positions.All) =>
        Interventions.AddVector(model.Hooks, site, vector, 1.0, positions);

    /// <summary>x ← x − (x·d̂)d̂ at one site until disposed.</summary>
    public static IDisposable Ablate(LlamaForCausalLM model, string site, Tensor direction, Positions positions = Positions.All) =>
        Interventions.ProjectOut(model.Hooks, site, direction, positions);

    /// <summary>
    /// x ← x − (x·d̂)d̂ at <c>blocks.{i}.{siteKind}</c> of every layer (Soligo et al.'s "single direction from all
    /// layers"), as one scope.
    /// </summary>
    public static IDisposable AblateAllLayers(LlamaForCausalLM model, Tensor direction, string siteKind = "hook_resid_post", Positions positions = Positions.All) =>
        AblateEachLayer(model, Enumerable.Repeat(direction, model.Config.NumHiddenLayers).ToArray(), siteKind, positions);

    /// <summary>
    /// x ← x − (x·d̂_l)d̂_l at <c>blocks.{l}.{siteKind}</c> with each layer's own direction (Soligo et al.'s layer-wise
    /// ablation of a per-layer mean-difference vector), as one scope.
    /// </summary>
    public static IDisposable AblateEachLayer(LlamaForCausalLM model, IReadOnlyList<Tensor> directions, string siteKind = "hook_resid_post", Positions positions = Positions.All)
    {
        if (directions.Count != model.Config.NumHiddenLayers)
            throw new ArgumentException($"{directions.Count} directions for a model of {model.Config.NumHiddenLayers} layers; give one per layer");
        var handles = new List<IDisposable>();
        try
        {
            for (int layer = 0; layer < model.Config.NumHiddenLayers; layer++)
                handles.Add(Interventions.ProjectOut(model.Hooks, $"blocks.{layer}.{siteKind}", directions[layer], positions));
        }
        catch
        {
            foreach (var h in handles) h.Dispose();
            throw;
        }
        return Interventions.Scope([.. handles]);
    }

    /// <summary>
    /// A Gaussian direction with the given norm and seed, shaped and placed like <paramref name="like"/>: the random
    /// control. libtorch uses only the low 32 bits of the seed.
    /// </summary>
    public static Tensor RandomDirection(Tensor like, double norm, long seed)
    {
        using var scope = NewDisposeScope();
        using var generator = new TorchSharp.torch.Generator((ulong)seed, like.device);
        var r = randn(like.shape, generator: generator, dtype: ScalarType.Float32, device: like.device);
        return (r * (norm / r.norm().item<float>())).MoveToOuterDisposeScope();
    }
}
