using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>
/// One weighted row sum per latent: <c>Destination[j] += Σ_{n: latents[n] = j} Weights[n] · Source[Rows[n]]</c>.
/// Destination is (d_sae, d), Source (R, d), Weights and Rows (N) like the latents.
/// </summary>
public sealed record LatentRowSum(Tensor Weights, Tensor Rows, Tensor Source, Tensor Destination);

/// <summary>
/// The gradients of a sparse SAE's decoder and encoder rows: for every active (token, latent) pair, a token's row
/// (∂L/∂x̂ for the decoder, the centred input for the encoder) scaled by that pair's activation or pre-activation
/// gradient, summed into the latent's row. libtorch's sparse COO × dense product does this on one thread, one axpy per
/// pair; here the pairs are counting-sorted by latent once for all sums, and each latent's rows are summed by one thread,
/// so threads never write the same row.
/// </summary>
public static class SparseGradient
{
    /// <summary>
    /// Adds every sum into its destination in place. Latent and row indices out of range are an error naming the entry;
    /// tensors off the CPU or not contiguous float32 take libtorch's sparse product instead.
    /// </summary>
    public static void Accumulate(Tensor latents, IReadOnlyList<LatentRowSum> sums)
    {
        var n = latents.shape[0];
        if (sums.Count == 0 || n == 0) return;
        foreach (var s in sums)
        {
            if (s.Weights.shape[0] != n || s.Rows.shape[0] != n)
                throw new ArgumentException($"every sum needs one weight and one row per latent entry ({n}); got weights [{string.Join(", ", s.Weights.shape)}], rows [{string.Join(", ", s.Rows.shape)}]");
            if (s.Source.dim() != 2 || s.Destination.dim() != 2 || s.Source.shape[1] != s.Destination.shape[1])
                throw new ArgumentException($"source [{string.Join(", ", s.Source.shape)}] and destination [{string.Join(", ", s.Destination.shape)}] must be matrices of the same width");
        }
        if (!Native(latents, sums))
        {
            using var scope = NewDisposeScope();
            foreach (var s in sums)
            {
                var coo = sparse_coo_tensor(stack([latents, s.Rows]), s.Weights, [s.Destination.shape[0], s.Source.shape[0]]);
                s.Destination.add_(coo.matmul(s.Source));
            }
            return;
        }
        Run(latents, sums);
    }

    static bool Native(Tensor latents, IReadOnlyList<LatentRowSum> sums) =>
        latents.device_type == DeviceType.CPU && latents.dtype == ScalarType.Int64 && latents.is_contiguous()
        && sums.All(s => s.Weights.device_type == DeviceType.CPU && s.Weights.dtype == ScalarType.Float32 && s.Weights.is_contiguous()
            && s.Rows.dtype == ScalarType.Int64 && s.Rows.is_contiguous()
            && s.Source.dtype == ScalarType.Float32 && s.Source.is_contiguous()
            && s.Destination.dtype == ScalarType.Float32 && s.Destination.is_contiguous()
            && s.Destination.shape[0] == sums[0].Destination.shape[0]
            && s.Source.shape[0] < int.MaxValue);

    // Optimised from the first call: tier-0 code runs these loops several times slower, and a benchmark's or a short
    // run's first steps would pay for it.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Run(Tensor latents, IReadOnlyList<LatentRowSum> sums)
    {
        var n = (int)latents.shape[0];
        var dSae = (int)sums[0].Destination.shape[0];
        // Counting sort of entry indices by latent: entries of latent j are order[start[j] .. start[j + 1]).
        var start = new int[dSae + 1];
        var order = new int[n];
        var l = (long*)Address(latents);
        for (var i = 0; i < n; i++)
        {
            if ((ulong)l[i] >= (ulong)dSae) throw new ArgumentOutOfRangeException(nameof(latents), $"latent index {l[i]} at entry {i} is outside [0, {dSae})");
            start[l[i] + 1]++;
        }
        for (var j = 0; j < dSae; j++) start[j + 1] += start[j];
        var fill = (int[])start.Clone();
        for (var i = 0; i < n; i++) order[fill[l[i]]++] = i;

        var sources = sums.Select(s => Address(s.Source)).ToArray();
        var destinations = sums.Select(s => Address(s.Destination)).ToArray();
        var widths = sums.Select(s => (int)s.Destination.shape[1]).ToArray();
        // Each sum's rows and weights in latent order, so the passes below read them sequentially.
        var sortedRows = new int[sums.Count][];
        var sortedWeights = new float[sums.Count][];
        for (var t = 0; t < sums.Count; t++)
        {
            var r = (long*)Address(sums[t].Rows);
            var w = (float*)Address(sums[t].Weights);
            var count = sums[t].Source.shape[0];
            sortedRows[t] = new int[n];
            sortedWeights[t] = new float[n];
            for (var e = 0; e < n; e++)
            {
                var i = order[e];
                if ((ulong)r[i] >= (ulong)count)
                    throw new ArgumentOutOfRangeException(nameof(sums), $"sum {t}: row index {r[i]} at entry {i} is outside [0, {count})");
                (sortedRows[t][e], sortedWeights[t][e]) = ((int)r[i], w[i]);
            }
        }
        // Tasks of 256 latents of one sum: threads never write the same row. Splitting the rows' width into column chunks
        // (to keep a source's columns in L2) was measured slower at d_in 256: 18–25 ms against 8–10 ms for both sums.
        const int latentsPerTask = 256;
        var blocks = (dSae + latentsPerTask - 1) / latentsPerTask;
        Parallel.For(0, sums.Count * blocks, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, get_num_threads()) }, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (task) =>
        {
            var (t, block) = (task / blocks, task % blocks);
            var (d, r, w) = (widths[t], sortedRows[t], sortedWeights[t]);
            var source = (float*)sources[t];
            var destination = (float*)destinations[t];
            for (var j = block * latentsPerTask; j < Math.Min(dSae, (block + 1) * latentsPerTask); j++)
                for (var e = start[j]; e < start[j + 1]; e++)
                    AddScaled(destination + (long)j * d, source + (long)r[e] * d, w[e], d);
        });
    }

    /// <summary>A tensor's storage lives in native memory, which never moves, so its address outlives any <c>fixed</c>.</summary>
    static unsafe nint Address(Tensor t) => (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(t.bytes));

    /// <summary>destination[0..d) += scale · source[0..d).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void AddScaled(float* destination, float* source, float scale, int d)
    {
        var k = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(scale);
            for (; k + 16 <= d; k += 16)
                Vector512.Store(Vector512.FusedMultiplyAdd(s, Vector512.Load(source + k), Vector512.Load(destination + k)), destination + k);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            for (; k + 8 <= d; k += 8)
                Vector256.Store(Vector256.FusedMultiplyAdd(s, Vector256.Load(source + k), Vector256.Load(destination + k)), destination + k);
        }
        for (; k < d; k++) destination[k] = MathF.FusedMultiplyAdd(scale, source[k], destination[k]);
    }
}
