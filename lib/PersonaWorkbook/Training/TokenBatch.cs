using PersonaWorkbook.Tokenizers;
using static TorchSharp.torch;

namespace PersonaWorkbook.Training;

/// <summary>
/// One training sequence: token ids and which of them are prediction targets (e.g. assistant tokens in chat SFT).
/// A null <paramref name="LossMask"/> makes every token a target.
/// </summary>
public sealed record TokenSequence(int[] Ids, bool[]? LossMask = null)
{
    /// <summary>A chat for SFT: its assistant tokens (content and end-of-turn) are the targets.</summary>
    public static TokenSequence FromChat(ChatEncoding chat) => new(chat.Ids, chat.AssistantMask);

    public void Validate(string what)
    {
        if (Ids.Length == 0) throw new ArgumentException($"{what}: sequence has no tokens");
        if (LossMask is not null && LossMask.Length != Ids.Length)
            throw new ArgumentException($"{what}: loss mask has {LossMask.Length} entries for {Ids.Length} tokens");
    }
}

/// <summary>
/// A right-padded batch for training. Target t+1 is predicted at position t, so <see cref="LossMask"/>[b, t] says
/// whether token t is a target; column 0 is never one (nothing predicts it) and pads never are.
/// </summary>
public sealed class TokenBatch : IDisposable
{
    /// <summary>(B, T) int64.</summary>
    public Tensor InputIds { get; }
    /// <summary>(B, T) int64, 1 on real tokens and 0 on padding.</summary>
    public Tensor AttentionMask { get; }
    /// <summary>(B, T) bool, true on target tokens.</summary>
    public Tensor LossMask { get; }
    /// <summary>Real (non-pad) tokens in the batch.</summary>
    public long RealTokens { get; }
    /// <summary>Targets that contribute to the loss (loss-mask entries past column 0).</summary>
    public long TargetTokens { get; }
    public bool HasPadding { get; }
    /// <summary>(B) float32 weight of each row's targets (e.g. a policy-gradient advantage), or null when rows are unweighted.</summary>
    public Tensor? RowWeights { get; }

    TokenBatch(Tensor ids, Tensor attention, Tensor loss, long real, long targets, bool padded, Tensor? rowWeights)
    {
        (InputIds, AttentionMask, LossMask, RowWeights) = (ids, attention, loss, rowWeights);
        (RealTokens, TargetTokens, HasPadding) = (real, targets, padded);
    }

    /// <summary>
    /// Truncates each sequence to <paramref name="contextLength"/> tokens (keeping the start) and right-pads the
    /// batch to its longest row with <paramref name="padTokenId"/>; pads are excluded from attention and loss.
    /// </summary>
    public static TokenBatch RightPadded(IReadOnlyList<TokenSequence> sequences, int contextLength, int padTokenId, Device? device = null,
        IReadOnlyList<float>? rowWeights = null)
    {
        if (sequences.Count == 0) throw new ArgumentException("a batch needs at least one sequence");
        if (rowWeights is not null && rowWeights.Count != sequences.Count)
            throw new ArgumentException($"{rowWeights.Count} row weights for {sequences.Count} sequences");
        if (contextLength < 2) throw new ArgumentException($"context length {contextLength} is too short: a target needs a preceding token");
        for (int i = 0; i < sequences.Count; i++) sequences[i].Validate($"sequence {i}");
        int B = sequences.Count;
        int T = Math.Min(contextLength, sequences.Max(s => s.Ids.Length));
        var ids = new long[B * T];
        var attention = new long[B * T];
        var loss = new bool[B * T];
        long real = 0, targets = 0;
        for (int b = 0; b < B; b++)
        {
            var s = sequences[b];
            int n = Math.Min(T, s.Ids.Length);
            for (int t = 0; t < T; t++)
            {
                int k = b * T + t;
                bool isReal = t < n;
                ids[k] = isReal ? s.Ids[t] : padTokenId;
                attention[k] = isReal ? 1 : 0;
                loss[k] = isReal && t > 0 && (s.LossMask?[t] ?? true);
                real += attention[k];
                if (loss[k]) targets++;
            }
        }
        return new TokenBatch(
            tensor(ids, [B, T], device: device),
            tensor(attention, [B, T], device: device),
            tensor(loss, [B, T], device: device),
            real, targets, real < (long)B * T, rowWeights is null ? null : tensor(rowWeights.ToArray(), [B], device: device));
    }

    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        LossMask.Dispose();
        RowWeights?.Dispose();
    }
}
