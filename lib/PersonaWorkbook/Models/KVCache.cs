using static TorchSharp.torch;

namespace PersonaWorkbook.Models;

/// <summary>
/// Per-layer keys and values of the tokens seen so far, (B, n_kv_heads, T_past, head_dim) each, held in buffers
/// allocated once for <c>capacity</c> tokens: a step writes its new columns in place instead of concatenating the
/// whole past (with a batch of 256 the copy cost more than the attention it fed). A step past the capacity doubles
/// it. The cache owns its buffers (they live across generation steps, outside any step's dispose scope); dispose it
/// when generation ends.
/// </summary>
public sealed class KVCache : IDisposable
{
    readonly Tensor?[] keys, values;
    readonly long[] lengths;
    readonly int initialCapacity;

    /// <param name="capacity">Tokens to reserve room for (prompt + new tokens); 0 sizes the buffers at the first step.</param>
    public KVCache(int numLayers, int capacity = 0)
    {
        if (capacity < 0) throw new ArgumentException($"KV cache capacity is {capacity}; must be ≥ 0");
        keys = new Tensor?[numLayers];
        values = new Tensor?[numLayers];
        lengths = new long[numLayers];
        initialCapacity = capacity;
    }

    /// <summary>Tokens cached so far (read from layer 0, which every forward pass fills first).</summary>
    public long Length => lengths[0];

    /// <summary>Appends this step's k, v (B, nkv, T, hd) for a layer and returns the full (B, nkv, T_past + T, hd).</summary>
    public (Tensor k, Tensor v) Append(int layer, Tensor k, Tensor v)
    {
        long past = lengths[layer], T = k.shape[2], needed = past + T;
        var current = keys[layer]?.shape[2] ?? 0;
        if (needed > current)
        {
            var size = Math.Max(needed, Math.Max(initialCapacity, 2 * current));
            keys[layer] = Grow(keys[layer], k, past, size);
            values[layer] = Grow(values[layer], v, past, size);
        }
        using (no_grad())
        {
            keys[layer]!.narrow(2, past, T).copy_(k);
            values[layer]!.narrow(2, past, T).copy_(v);
        }
        lengths[layer] = needed;
        // Views of the filled columns, owned by the caller's scope; disposing them leaves the buffers alone.
        return (keys[layer]!.narrow(2, 0, needed), values[layer]!.narrow(2, 0, needed));
    }

    /// <summary>
    /// Every layer's buffers, for a step of <paramref name="T"/> tokens over <paramref name="B"/> rows that writes its own
    /// columns (<see cref="ScriptedDecodeStep"/>, then <see cref="Advance"/>): when every layer holds the same past and has room
    /// for the step; otherwise null, and <see cref="Append"/> (which grows buffers) is the way.
    /// </summary>
    internal (Tensor[] Keys, Tensor[] Values, long Past)? Reserved(long B, long T)
    {
        long past = lengths[0];
        for (int i = 0; i < keys.Length; i++)
            if (keys[i] is not { } k || values[i] is null || lengths[i] != past || k.shape[0] != B || k.shape[2] < past + T) return null;
        return (Array.ConvertAll(keys, k => k!), Array.ConvertAll(values, v => v!), past);
    }

    /// <summary>Counts <paramref name="T"/> more tokens in every layer, after a step wrote them into <see cref="Reserved"/>'s buffers.</summary>
    internal void Advance(long T)
    {
        for (int i = 0; i < lengths.Length; i++) lengths[i] += T;
    }

    /// <summary>A buffer of <paramref name="size"/> tokens shaped like <paramref name="like"/>, holding the first <paramref name="past"/> columns of <paramref name="old"/>.</summary>
    static Tensor Grow(Tensor? old, Tensor like, long past, long size)
    {
        var (B, heads, hd) = (like.shape[0], like.shape[1], like.shape[3]);
        var buffer = empty([B, heads, size, hd], like.dtype, like.device).DetachFromDisposeScope();
        if (old is not null)
        {
            using (no_grad()) buffer.narrow(2, 0, past).copy_(old.narrow(2, 0, past));
            old.Dispose();
        }
        return buffer;
    }

    public void Dispose()
    {
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i]?.Dispose();
            values[i]?.Dispose();
            keys[i] = values[i] = null;
            lengths[i] = 0;
        }
    }
}
