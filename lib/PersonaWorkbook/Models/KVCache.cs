using static TorchSharp.torch;

namespace PersonaWorkbook.Models;

/// <summary>
/// Per-layer keys and values of the tokens seen so far, (B, n_kv_heads, T_past, head_dim) each. The cache owns its
/// tensors (they live across generation steps, outside any step's dispose scope); dispose it when generation ends.
/// </summary>
public sealed class KVCache : IDisposable
{
    readonly Tensor?[] keys, values;

    public KVCache(int numLayers)
    {
        keys = new Tensor?[numLayers];
        values = new Tensor?[numLayers];
    }

    /// <summary>Tokens cached so far (read from layer 0, which every forward pass fills first).</summary>
    public long Length => keys[0]?.shape[2] ?? 0;

    /// <summary>Appends this step's k, v (B, nkv, T, hd) for a layer and returns the full (B, nkv, T_past + T, hd).</summary>
    public (Tensor k, Tensor v) Append(int layer, Tensor k, Tensor v)
    {
        var (oldK, oldV) = (keys[layer], values[layer]);
        var newK = oldK is null ? k.detach().clone() : cat([oldK, k.detach()], 2);
        var newV = oldV is null ? v.detach().clone() : cat([oldV, v.detach()], 2);
        keys[layer] = newK.DetachFromDisposeScope();
        values[layer] = newV.DetachFromDisposeScope();
        oldK?.Dispose();
        oldV?.Dispose();
        // Return aliases owned by the caller's scope so the cache's own tensors are never disposed by it.
        return (newK.alias(), newV.alias());
    }

    public void Dispose()
    {
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i]?.Dispose();
            values[i]?.Dispose();
            keys[i] = values[i] = null;
        }
    }
}
