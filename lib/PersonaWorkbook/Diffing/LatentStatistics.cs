using PersonaWorkbook.Generation;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Models;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Training;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Diffing;

/// <summary>Token ids with their response (assistant) positions marked; every other position is prompt.</summary>
public sealed record MarkedSequence(int[] Ids, bool[] Response)
{
    /// <summary>A chat conversation: its assistant tokens are the response.</summary>
    public static MarkedSequence FromChat(ChatEncoding chat) => new(chat.Ids, chat.AssistantMask);

    /// <summary>A prompt followed by a (sampled) response.</summary>
    public static MarkedSequence PromptAndResponse(int[] prompt, int[] response) =>
        new([.. prompt, .. response], [.. new bool[prompt.Length], .. Enumerable.Repeat(true, response.Length)]);

    internal void Validate(int index)
    {
        if (Ids.Length == 0) throw new ArgumentException($"sequence {index} has no tokens");
        if (Response.Length != Ids.Length) throw new ArgumentException($"sequence {index}: response mask has {Response.Length} entries for {Ids.Length} tokens");
    }
}

/// <summary>Which of a sequence's real tokens a statistic counts.</summary>
public enum TokenScope { Prompt, Response, All }

/// <summary>Per-latent mean activation and firing frequency (share of tokens with activation &gt; 0) over <see cref="Tokens"/> tokens.</summary>
public sealed record LatentMeans(float[] Mean, float[] FiringFrequency, long Tokens)
{
    /// <summary>The statistics of the union of two disjoint token sets.</summary>
    public static LatentMeans Merge(LatentMeans a, LatentMeans b)
    {
        if (a.Mean.Length != b.Mean.Length) throw new ArgumentException($"cannot merge statistics of {a.Mean.Length} and {b.Mean.Length} latents");
        long n = a.Tokens + b.Tokens;
        float Weighted(float x, float y) => n == 0 ? 0f : (float)(((double)x * a.Tokens + (double)y * b.Tokens) / n);
        return new LatentMeans(a.Mean.Zip(b.Mean, Weighted).ToArray(), a.FiringFrequency.Zip(b.FiringFrequency, Weighted).ToArray(), n);
    }
}

/// <summary>Options for running a model + SAE over token sequences.</summary>
public sealed record StatisticsOptions
{
    /// <summary>Sequences per forward pass.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Longer sequences keep their first tokens; default: the model's max_position_embeddings.</summary>
    public int? ContextLength { get; init; }
    /// <summary>Token ids never counted; <see cref="For"/> fills in <see cref="ControlTokenIds"/>.</summary>
    public IReadOnlyCollection<int> ExcludeTokenIds { get; init; } = [];
    /// <summary>The activation site; default: the SAE's own hook name.</summary>
    public string? HookName { get; init; }
    public int PadTokenId { get; init; }

    /// <summary>
    /// The ids of the tokens that structure text rather than say something: BOS, EOS, PAD, UNK, the chat role tokens and
    /// the world's document markers (<c>&lt;sys&gt; &lt;q&gt; &lt;a&gt;</c>). Not every special token: the organism's
    /// tokenizer also makes code identifiers special so they stay whole, and those are content.
    /// </summary>
    public static IReadOnlyCollection<int> ControlTokenIds(ITokenizer tokenizer) =>
        WordLevelTokenizer.DefaultSpecialTokens.Concat(WorldText.Markers).Select(tokenizer.TokenToId).Where(id => id is >= 0).Select(id => id!.Value)
            .Concat(new[] { tokenizer.BosId, tokenizer.EosId, tokenizer.PadId, tokenizer.UnkId }.Where(id => id >= 0))
            .Distinct().Order().ToArray();

    /// <summary>Defaults for a tokenizer: its control tokens excluded, its PAD id for padding.</summary>
    public static StatisticsOptions For(ITokenizer tokenizer) =>
        new() { ExcludeTokenIds = ControlTokenIds(tokenizer), PadTokenId = Math.Max(0, tokenizer.PadId) };

    internal string Hook(LlamaForCausalLM model, SparseAutoencoder sae)
    {
        var hook = HookName ?? sae.Config.HookName
            ?? throw new ArgumentException("the SAE's cfg.json names no hook (metadata.hook_name); pass StatisticsOptions.HookName");
        if (!model.Hooks.Sites.Contains(hook))
            throw new ArgumentException($"unknown activation site '{hook}' for a {model.Config.NumHiddenLayers}-layer model");
        if (sae.Config.DIn != model.Config.HiddenSize)
            throw new ArgumentException($"SAE d_in {sae.Config.DIn} does not match the model's hidden size {model.Config.HiddenSize}");
        return hook;
    }

    internal void Validate()
    {
        if (BatchSize <= 0) throw new ArgumentException($"BatchSize must be positive, got {BatchSize}");
        if (ContextLength is < 2) throw new ArgumentException($"ContextLength must be at least 2, got {ContextLength}");
    }
}

/// <summary>
/// SAE latent statistics of one model over a set of sequences, separately for prompt and response tokens (special
/// tokens excluded): the input of model diffing.
/// </summary>
public sealed record LatentStatistics(string HookName, LatentMeans Prompt, LatentMeans Response)
{
    [System.Text.Json.Serialization.JsonIgnore] public LatentMeans All => LatentMeans.Merge(Prompt, Response);

    public LatentMeans Of(TokenScope scope) => scope switch
    {
        TokenScope.Prompt => Prompt,
        TokenScope.Response => Response,
        _ => All,
    };

    /// <summary>Runs <paramref name="model"/> over the sequences in batches and encodes the hook's activations with <paramref name="sae"/>.</summary>
    public static LatentStatistics Compute(LlamaForCausalLM model, SparseAutoencoder sae, IEnumerable<MarkedSequence> sequences, StatisticsOptions options) =>
        Compute(model, [sae], sequences, options)[0];

    /// <summary>
    /// The statistics of several SAEs at one site (e.g. the seeds of one layer's SAE) from one pass of the model: each
    /// batch's activations are captured once and encoded by every SAE, with the same result as separate calls.
    /// </summary>
    public static IReadOnlyList<LatentStatistics> Compute(LlamaForCausalLM model, IReadOnlyList<SparseAutoencoder> saes, IEnumerable<MarkedSequence> sequences,
        StatisticsOptions options)
    {
        options.Validate();
        if (saes.Count == 0) throw new ArgumentException("no SAEs given");
        var hooks = saes.Select(sae => options.Hook(model, sae)).Distinct().ToArray();
        if (hooks.Length > 1) throw new ArgumentException($"the SAEs read different sites ({string.Join(", ", hooks)}); one pass serves SAEs of one site");
        var hook = hooks[0];
        var context = options.ContextLength ?? model.Config.MaxPositionEmbeddings;
        var device = model.parameters().First().device;
        // float64 accumulators: millions of small activations summed in float32 would lose the low digits.
        var sums = saes.Select(sae => zeros(2, sae.Config.DSae, ScalarType.Float64, device).DetachFromDisposeScope()).ToArray();     // (prompt|response, d_sae)
        var firing = saes.Select(sae => zeros(2, sae.Config.DSae, ScalarType.Float64, device).DetachFromDisposeScope()).ToArray();
        try
        {
            var counts = new long[2];
            int index = 0;
            foreach (var group in sequences.Chunk(options.BatchSize))
            {
                using var scope = NewDisposeScope();
                for (int i = 0; i < group.Length; i++) group[i].Validate(index + i);
                index += group.Length;
                using var batch = TokenBatch.RightPadded(group.Select(s => new TokenSequence(s.Ids)).ToArray(), context, options.PadTokenId, device);
                var acts = ActivationCapture.Run(model, batch.InputIds, [hook], batch.AttentionMask)[hook];   // (B, T, d)
                var real = PositionMasks.RealTokens(batch.InputIds, batch.AttentionMask, options.ExcludeTokenIds);
                var response = ResponseMask(group, batch.InputIds.shape[1], device);                           // (B, T)
                Tensor[] masks = [PositionMasks.Prompt(real, response), real.logical_and(response)];
                for (int part = 0; part < 2; part++)
                {
                    var rows = ActivationCapture.Select(acts, masks[part]);                                       // (N, d)
                    if (rows.shape[0] == 0) continue;
                    for (int k = 0; k < saes.Count; k++)
                    {
                        var f = saes[k].Encode(rows);                                                              // (N, d_sae)
                        sums[k][part].add_(f.sum(0, type: ScalarType.Float64));
                        firing[k][part].add_(f.gt(0).sum(0, type: ScalarType.Float64));
                    }
                    counts[part] += rows.shape[0];
                }
            }
            LatentMeans Means(int k, int part)
            {
                using var scope = NewDisposeScope();
                var n = Math.Max(1, counts[part]);
                return new LatentMeans(
                    (sums[k][part] / n).to(ScalarType.Float32).cpu().data<float>().ToArray(),
                    (firing[k][part] / n).to(ScalarType.Float32).cpu().data<float>().ToArray(), counts[part]);
            }
            return saes.Select((_, k) => new LatentStatistics(hook, Means(k, 0), Means(k, 1))).ToArray();
        }
        finally
        {
            foreach (var t in sums.Concat(firing)) t.Dispose();
        }
    }

    /// <summary>
    /// Samples one response per prompt with <paramref name="generation"/> (set its StopTokens and PadTokenId), then runs
    /// the model once over prompt + response with the response marked.
    /// </summary>
    public static (LatentStatistics Statistics, IReadOnlyList<MarkedSequence> Sequences) Generate(LlamaForCausalLM model, SparseAutoencoder sae,
        IReadOnlyList<int[]> prompts, GenerationOptions generation, StatisticsOptions options)
    {
        var sequences = Sample(model, prompts, generation, options);
        return (Compute(model, sae, sequences, options), sequences);
    }

    /// <summary>
    /// One sampled response per prompt, as prompt + response with the response marked: the text that several SAEs can
    /// then read (<see cref="Compute"/>). Batches of <see cref="StatisticsOptions.BatchSize"/>, seeded per batch.
    /// </summary>
    public static IReadOnlyList<MarkedSequence> Sample(LlamaForCausalLM model, IReadOnlyList<int[]> prompts, GenerationOptions generation, StatisticsOptions options)
    {
        var sequences = new List<MarkedSequence>(prompts.Count);
        foreach (var group in prompts.Chunk(options.BatchSize))
        {
            var responses = TextGenerator.Generate(model, group, generation with { Seed = generation.Seed + sequences.Count });
            sequences.AddRange(group.Zip(responses, (p, r) => MarkedSequence.PromptAndResponse(p, r.Tokens)));
        }
        return sequences;
    }

    /// <summary>The sequences' response flags as a right-padded (B, width) bool tensor (pads false).</summary>
    internal static Tensor ResponseMask(IReadOnlyList<MarkedSequence> group, long width, Device device)
    {
        var flags = new bool[group.Count * width];
        for (int b = 0; b < group.Count; b++)
            for (int t = 0; t < Math.Min(width, group[b].Response.Length); t++)
                flags[b * width + t] = group[b].Response[t];
        return tensor(flags, [group.Count, width], device: device);   // (B, T)
    }
}
