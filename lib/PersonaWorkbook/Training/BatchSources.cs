using static TorchSharp.torch;

namespace PersonaWorkbook.Training;

/// <summary>
/// An endless stream of training batches. <see cref="Reset"/> starts a fresh, reproducible order from the given
/// generator (the trainer passes one seeded with <see cref="TrainerOptions.Seed"/>).
/// </summary>
public interface IBatchSource
{
    /// <summary>Examples per epoch (windows or sequences).</summary>
    int Count { get; }
    void Reset(Random random);
    TokenBatch Next(int batchSize, Device device);
}

/// <summary>Visits the indices 0..n-1 in a new random order each epoch; batches run on across epoch boundaries.</summary>
sealed class EpochShuffler(int count)
{
    readonly int[] order = Enumerable.Range(0, count).ToArray();
    Random random = new(0);
    int cursor = count;

    public void Reset(Random random)
    {
        this.random = random;
        cursor = order.Length;
    }

    public int[] Take(int n)
    {
        if (n <= 0) throw new ArgumentException($"batch size must be positive, got {n}");
        var taken = new int[n];
        for (int i = 0; i < n; i++)
        {
            if (cursor == order.Length)
            {
                Array.Sort(order);
                random.Shuffle(order);
                cursor = 0;
            }
            taken[i] = order[cursor++];
        }
        return taken;
    }
}

/// <summary>
/// Pretraining data: documents joined into one token stream with a separator after each, cut into
/// non-overlapping windows of the context length; every token is a target. A final partial window of at least
/// two tokens is kept (padded when batched).
/// </summary>
public sealed class PackedDataset : IBatchSource
{
    readonly int[] stream;
    readonly int contextLength, separatorTokenId;
    readonly EpochShuffler shuffler;

    public PackedDataset(IEnumerable<int[]> documents, int contextLength, int separatorTokenId)
    {
        if (contextLength < 2) throw new ArgumentException($"context length {contextLength} is too short: a target needs a preceding token");
        this.contextLength = contextLength;
        this.separatorTokenId = separatorTokenId;
        var tokens = new List<int>();
        foreach (var doc in documents)
        {
            tokens.AddRange(doc);
            tokens.Add(separatorTokenId);
        }
        stream = tokens.ToArray();
        int full = stream.Length / contextLength, rest = stream.Length % contextLength;
        Count = full + (rest >= 2 ? 1 : 0);
        if (Count == 0) throw new ArgumentException($"the corpus has {stream.Length} tokens; packing needs at least 2");
        shuffler = new EpochShuffler(Count);
    }

    public int Count { get; }

    /// <summary>Tokens in the packed stream, separators included.</summary>
    public int TotalTokens => stream.Length;

    public void Reset(Random random) => shuffler.Reset(random);

    public TokenBatch Next(int batchSize, Device device)
    {
        var windows = shuffler.Take(batchSize).Select(w =>
        {
            int start = w * contextLength;
            return new TokenSequence(stream[start..Math.Min(stream.Length, start + contextLength)]);
        }).ToArray();
        return TokenBatch.RightPadded(windows, contextLength, separatorTokenId, device);
    }
}

/// <summary>
/// Chat SFT data: whole sequences with their loss masks, shuffled each epoch, truncated to the context length
/// and right-padded per batch.
/// </summary>
public sealed class PaddedBatchSampler : IBatchSource
{
    readonly TokenSequence[] sequences;
    readonly int contextLength, padTokenId;
    readonly EpochShuffler shuffler;

    public PaddedBatchSampler(IEnumerable<TokenSequence> sequences, int contextLength, int padTokenId)
    {
        this.sequences = sequences.ToArray();
        if (this.sequences.Length == 0) throw new ArgumentException("no training sequences");
        for (int i = 0; i < this.sequences.Length; i++) this.sequences[i].Validate($"sequence {i}");
        this.contextLength = contextLength;
        this.padTokenId = padTokenId;
        shuffler = new EpochShuffler(this.sequences.Length);
    }

    public int Count => sequences.Length;

    public void Reset(Random random) => shuffler.Reset(random);

    public TokenBatch Next(int batchSize, Device device) =>
        TokenBatch.RightPadded(shuffler.Take(batchSize).Select(i => sequences[i]).ToArray(), contextLength, padTokenId, device);
}
