using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using PersonaWorkbook.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>
/// Which latents are active for a batch of B tokens, in CSR order: entry n is latent <see cref="Latents"/>[n] of token
/// <see cref="Rows"/>[n]; token b's entries start at <see cref="Offsets"/>[b]. <see cref="PreActivations"/> are the
/// selected pre-activations (not yet ReLU'd).
/// </summary>
public sealed record SparseCodes(Tensor Rows, Tensor Latents, Tensor Offsets, Tensor PreActivations, long Batch)
{
    public long Count => Latents.shape[0];
}

/// <summary>Top-k selection of SAE pre-activations without sorting whole rows.</summary>
public static class SparseSelection
{
    /// <summary>
    /// The k largest entries of each row of <paramref name="scores"/> (R, S), as <c>topk</c> gives them but unsorted.
    /// libtorch's CPU topk costs several microseconds per row whatever k is, more than the encoder matmul of a TopK
    /// SAE, so contiguous float32 CPU scores go through <see cref="RowTopK"/>: one vectorised pass per row that keeps a
    /// k-element min-heap and skips any 8 entries none of which beats the heap's minimum. Elsewhere (GPU, other dtypes)
    /// libtorch's topk runs. NaNs are never selected by the CPU path.
    /// </summary>
    public static (Tensor Values, Tensor Indices) TopK(Tensor scores, long k)
    {
        var (rows, width) = (scores.shape[0], scores.shape[1]);
        if (k <= 0 || k > width) throw new ArgumentException($"k must be in [1, {width}], got {k}");
        if (scores.device_type != DeviceType.CPU || scores.dtype != ScalarType.Float32 || width > int.MaxValue)
            return scores.topk((int)k, dim: 1, sorted: false);
        using var scope = NewDisposeScope();
        var input = scores.contiguous();
        var values = empty(rows, k, ScalarType.Float32);
        var indices = empty(rows, k, ScalarType.Int64);
        unsafe
        {
            fixed (byte* inBytes = input.bytes, valueBytes = values.bytes, indexBytes = indices.bytes)
            {
                var (src, vals, idxs) = ((nint)inBytes, (nint)valueBytes, (nint)indexBytes);
                var threads = Math.Max(1, get_num_threads());
                var block = Math.Max(1, (rows + threads * 4 - 1) / (threads * 4));
                Parallel.For(0, (rows + block - 1) / block, new ParallelOptions { MaxDegreeOfParallelism = threads }, b =>
                {
                    for (var r = b * block; r < Math.Min(rows, (b + 1) * block); r++)
                        RowTopK((float*)src + r * width, (int)width, (int)k, (float*)vals + r * k, (long*)idxs + r * k);
                });
            }
        }
        return (values.MoveToOuterDisposeScope(), indices.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Top k of one row into a min-heap (heapValues[0] is the smallest kept value). Each entry that beats the heap's
    /// minimum costs a sift, and a scan that starts from the first k entries admits about k·ln(width / k) of them; so the
    /// scan first skips everything at or below a floor read off a strided sample (<see cref="SampleFloor"/>), and
    /// rescans without it in the rare row where fewer than k entries clear the floor.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // tier-0 code would slow a run's first steps several times
    static unsafe void RowTopK(float* row, int width, int k, float* heapValues, long* heapIndices)
    {
        if (!Scan(row, width, k, heapValues, heapIndices, SampleFloor(row, width, k)))
            Scan(row, width, k, heapValues, heapIndices, float.NegativeInfinity);
    }

    /// <summary>
    /// The heap scan, skipping entries at or below <paramref name="floor"/>. False when the floor was too high: the
    /// heap's minimum ended below it, so a skipped entry may belong to the top k.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe bool Scan(float* row, int width, int k, float* heapValues, long* heapIndices, float floor)
    {
        for (var i = 0; i < k; i++) { heapValues[i] = row[i]; heapIndices[i] = i; }
        for (var i = k / 2 - 1; i >= 0; i--) SiftDown(heapValues, heapIndices, k, i);
        var skip = MathF.Max(heapValues[0], floor);
        var j = k;
        if (Vector512.IsHardwareAccelerated)
            for (; j + 16 <= width; j += 16)
            {
                var mask = Vector512.GreaterThan(Vector512.Load(row + j), Vector512.Create(skip)).ExtractMostSignificantBits();
                while (mask != 0)
                {
                    var lane = BitOperations.TrailingZeroCount(mask);
                    mask &= mask - 1;
                    Offer(row[j + lane], j + lane);
                }
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; j + 8 <= width; j += 8)
            {
                var mask = Vector256.GreaterThan(Vector256.Load(row + j), Vector256.Create(skip)).ExtractMostSignificantBits();
                while (mask != 0)
                {
                    var lane = BitOperations.TrailingZeroCount(mask);
                    mask &= mask - 1;
                    Offer(row[j + lane], j + lane);
                }
            }
        for (; j < width; j++) Offer(row[j], j);
        return !(heapValues[0] < floor);

        void Offer(float value, long index)
        {
            if (!(value > skip)) return;   // the mask was computed against an older, lower bound
            heapValues[0] = value;
            heapIndices[0] = index;
            SiftDown(heapValues, heapIndices, k, 0);
            skip = MathF.Max(heapValues[0], floor);
        }
    }

    const int MaxSampleRank = 64;

    /// <summary>
    /// A guess at the row's (2k)-th largest entry: the r-th largest of a strided sample of 16k entries, r chosen so it
    /// stands for about 2k entries of the row. −∞ for rows too short to sample or r above MaxSampleRank. Any floor gives the right answer (a
    /// floor above the k-th largest only costs a rescan); a sampled one lets the scan admit about 2k entries.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe float SampleFloor(float* row, int width, int k)
    {
        var stride = (int)(width / (16L * k));
        if (stride < 2) return float.NegativeInfinity;
        var samples = width / stride;
        var rank = Math.Max(1, (int)(2L * k * samples / width));
        // The sample is kept in a sorted array (insertion costs up to rank moves): worth it for a token's k, not for
        // BatchTopK's k · batch over a whole batch, where the plain scan runs.
        if (rank > MaxSampleRank) return float.NegativeInfinity;
        var top = stackalloc float[rank];   // the rank largest samples so far, descending
        var count = 0;
        for (var i = 0; i < samples; i++)
        {
            var value = row[(long)i * stride];
            if (float.IsNaN(value)) continue;
            if (count == rank && !(value > top[rank - 1])) continue;
            var position = count < rank ? count++ : rank - 1;
            while (position > 0 && value > top[position - 1]) { top[position] = top[position - 1]; position--; }
            top[position] = value;
        }
        return count == rank ? top[rank - 1] : float.NegativeInfinity;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void SiftDown(float* values, long* indices, int count, int i)
    {
        while (true)
        {
            var smallest = i;
            var (left, right) = (2 * i + 1, 2 * i + 2);
            if (left < count && values[left] < values[smallest]) smallest = left;
            if (right < count && values[right] < values[smallest]) smallest = right;
            if (smallest == i) return;
            (values[i], values[smallest]) = (values[smallest], values[i]);
            (indices[i], indices[smallest]) = (indices[smallest], indices[i]);
            i = smallest;
        }
    }

    /// <summary>Each token's k largest pre-activations (B, S) as codes.</summary>
    public static SparseCodes PerToken(Tensor pre, long k)
    {
        var (values, indices) = TopK(pre, k);
        return FromRows(values, indices);
    }

    /// <summary>
    /// Each token's k largest pre-activations of <c>inputs · weightᵀ + bias</c> (inputs (B, d), weight (S, d)),
    /// computed a block of tokens at a time (at most 32 M pre-activations, 128 MB), so memory stays bounded whatever the
    /// batch and width. Each block hands the cores from libtorch's OpenMP workers (the matmul) to .NET's (the top-k) and
    /// back, and each hand-over costs: at d_in 256, d_sae 8192, batch 4096 on 2 cores the whole training step over the
    /// encoder matmul measured 1.56–1.61× with blocks of 512 rows, 1.52–1.55× with 1024, 1.47–1.52× with 2048 and
    /// 1.44–1.48× in one block (interleaved runs of `workbook bench-sae`, 2026-11-24). Latent j of the result is row j
    /// of <paramref name="weight"/>.
    /// </summary>
    public static SparseCodes PerTokenBlocked(Tensor inputs, Tensor weight, Tensor bias, long k)
    {
        using var scope = NewDisposeScope();
        var (batch, width) = (inputs.shape[0], weight.shape[0]);
        var blockRows = Math.Clamp((1L << 25) / width, 1, Math.Max(1, batch));
        var values = new List<Tensor>();
        var indices = new List<Tensor>();
        for (long start = 0; start < batch; start += blockRows)
        {
            var pre = addmm(bias, inputs.narrow(0, start, Math.Min(blockRows, batch - start)), weight.t(), 1, 1); // (b, S)
            var (v, i) = TopK(pre, k);
            pre.Dispose();
            values.Add(v);
            indices.Add(i);
        }
        var codes = FromRows(cat(values), cat(indices));
        return Outer(codes);
    }

    /// <summary>Codes from per-token (B, k) values and latent indices.</summary>
    static SparseCodes FromRows(Tensor values, Tensor indices)
    {
        using var scope = NewDisposeScope();
        var (batch, k) = (values.shape[0], values.shape[1]);
        // Scalars held through their calls (HeldScalars says why).
        using Scalar rowCount = batch.ToScalar(), end = (batch * k).ToScalar(), step = k.ToScalar();
        var rows = arange(rowCount, dtype: ScalarType.Int64, device: values.device).repeat_interleave(k); // (B·k)
        var offsets = arange(HeldScalars.Zero, end, step, dtype: ScalarType.Int64, device: values.device);           // (B)
        return Outer(new SparseCodes(rows, indices.reshape(-1), offsets, values.reshape(-1), batch));
    }

    /// <summary>
    /// BatchTopK: the <paramref name="total"/> largest ReLU'd pre-activations of the whole batch (B, S), in CSR order.
    /// A token may get any number of latents, including none.
    /// </summary>
    public static SparseCodes PerBatch(Tensor pre, long total)
    {
        using var scope = NewDisposeScope();
        var (batch, width) = (pre.shape[0], pre.shape[1]);
        var flat = pre.relu().view(1, batch * width);                                  // (1, B·S)
        var (_, positions) = TopK(flat, Math.Min(total, batch * width));
        var sorted = positions.view(-1).sort().Values;                                 // row-major = grouped by token
        using var widthScalar = width.ToScalar();
        var rows = sorted.div(widthScalar, RoundingMode.floor);
        var latents = sorted.remainder(widthScalar);
        var values = pre.view(-1).index_select(0, sorted);
        var counts = rows.bincount(null, batch);                                  // (B)
        var offsets = counts.cumsum(dim: 0) - counts;
        return Outer(new SparseCodes(rows, latents, offsets, values, batch));
    }

    static SparseCodes Outer(SparseCodes c) => new(c.Rows.MoveToOuterDisposeScope(), c.Latents.MoveToOuterDisposeScope(),
        c.Offsets.MoveToOuterDisposeScope(), c.PreActivations.MoveToOuterDisposeScope(), c.Batch);
}
