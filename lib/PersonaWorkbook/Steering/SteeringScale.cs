using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Models;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Training;
using static TorchSharp.torch;

namespace PersonaWorkbook.Steering;

/// <summary>What a steering strength α is measured in.</summary>
public enum SteeringUnit
{
    /// <summary>α · v, the vector exactly as given (any norm).</summary>
    Raw,
    /// <summary>α · m · v̂: m is the median residual norm at the site (the OpenAI follow-up's "0.4 × median norm").</summary>
    MedianResidualNorm,
    /// <summary>α · a_max · v̂: a_max is the latent's largest activation over a token set (diffing-toolkit's convention).</summary>
    MaxActivation,
}

/// <summary>
/// Turns a strength α into the vector added to the residual stream. Raw adds α·v. The other units make the added
/// vector's norm independent of how the direction was normalised: α · <see cref="Reference"/> · v/‖v‖, so α = 1 is
/// "one median residual norm" or "the latent at its largest observed activation". With an SAE decoder row as v and
/// <see cref="SteeringUnit.MaxActivation"/>, α = 1 adds the unit decoder row times the max activation: what the SAE's
/// own reconstruction adds for that latent at that activation when its decoder rows have unit norm (ours are
/// initialised so; a trained decoder drifts a little, so the convention fixes the norm rather than copy the row).
/// </summary>
public sealed record SteeringScale(SteeringUnit Unit, double Reference)
{
    /// <summary>α · v with no reference.</summary>
    public static SteeringScale Raw { get; } = new(SteeringUnit.Raw, 1.0);

    public static SteeringScale OfMedianNorm(double medianNorm) => Checked(new(SteeringUnit.MedianResidualNorm, medianNorm));

    public static SteeringScale OfMaxActivation(double maxActivation) => Checked(new(SteeringUnit.MaxActivation, maxActivation));

    static SteeringScale Checked(SteeringScale s) => double.IsFinite(s.Reference) && s.Reference > 0
        ? s : throw new ArgumentException($"{s.Unit} reference must be a positive number, got {s.Reference}");

    /// <summary>The vector (d_model) to add for strength α (negative α steers against the direction).</summary>
    public Tensor Vector(Tensor direction, double alpha)
    {
        if (direction.shape.Length != 1) throw new ArgumentException($"a steering direction is one vector (d_model); got shape [{string.Join(", ", direction.shape)}]");
        if (!double.IsFinite(alpha)) throw new ArgumentException($"steering strength α must be finite, got {alpha}");
        var v = direction.detach().to_type(ScalarType.Float32);
        if (Unit == SteeringUnit.Raw) return v * alpha;
        var norm = v.norm().item<float>();
        if (!(norm > 0)) throw new ArgumentException("cannot scale a zero steering direction to a norm");
        return v * (alpha * Reference / norm);
    }

    public override string ToString() => Unit == SteeringUnit.Raw ? "raw" : $"{Unit} ({Reference:G4})";

    /// <summary>
    /// The median over real tokens (options.ExcludeTokenIds and padding left out) of ‖resid‖ at <paramref name="site"/>
    /// on the given token sequences, as a scale. Even counts take the mean of the two middle norms.
    /// </summary>
    public static SteeringScale MedianResidualNorm(LlamaForCausalLM model, string site, IEnumerable<int[]> sequences, StatisticsOptions options) =>
        MedianResidualNorms(model, [site], sequences, options)[0];

    /// <summary>
    /// <see cref="MedianResidualNorm"/> over chat prompts (each rendered in the model's own template up to the answer),
    /// e.g. the user's questions with <c>Question.Conversations()</c>: the unit of "α × the median residual norm".
    /// </summary>
    public static SteeringScale MedianResidualNorm(LoadedModel model, string site, IEnumerable<IReadOnlyList<ChatMessage>> conversations)
    {
        var format = ChatFormat.For(model.Tokenizer);
        return MedianResidualNorm(model.Model, site, conversations.Select(c => format.EncodePrompt(c)).ToArray(), StatisticsOptions.For(model.Tokenizer));
    }

    /// <summary><see cref="MedianResidualNorm"/> at each of <paramref name="sites"/>, read off one forward pass per batch.</summary>
    public static IReadOnlyList<SteeringScale> MedianResidualNorms(LlamaForCausalLM model, IReadOnlyList<string> sites, IEnumerable<int[]> sequences, StatisticsOptions options)
    {
        options.Validate();
        var norms = sites.Select(_ => new List<double>()).ToArray();
        foreach (var (acts, real) in Activations(model, sites, sequences, options))
        {
            using var scope = NewDisposeScope();
            for (var i = 0; i < sites.Count; i++)
                norms[i].AddRange(ActivationCapture.Select(acts[sites[i]], real).norm(1).cpu().data<float>().Select(x => (double)x)); // (N)
        }
        return sites.Select((site, i) => norms[i].Count == 0
            ? throw new ArgumentException($"no real tokens to measure the residual norm at {site}")
            : OfMedianNorm(Quantiles.Median(norms[i]))).ToList();
    }

    /// <summary>
    /// The largest activation of <paramref name="latent"/> over the real tokens of the sequences at the SAE's site, in
    /// raw-activation units (divided by the SAE's input scale, 1 once folded), as a scale.
    /// </summary>
    public static SteeringScale MaxActivation(LlamaForCausalLM model, SparseAutoencoder sae, int latent, IEnumerable<int[]> sequences, StatisticsOptions options)
    {
        options.Validate();
        if (latent < 0 || latent >= sae.Config.DSae) throw new ArgumentOutOfRangeException(nameof(latent), $"latent {latent} is outside the SAE's {sae.Config.DSae} latents");
        var site = options.Hook(model, sae);
        double max = double.NegativeInfinity;
        foreach (var (acts, real) in Activations(model, [site], sequences, options))
        {
            using var scope = NewDisposeScope();
            var rows = ActivationCapture.Select(acts[site], real);                            // (N, d)
            if (rows.shape[0] == 0) continue;
            max = Math.Max(max, sae.Encode(rows)[.., latent].max().item<float>());
        }
        if (double.IsNegativeInfinity(max)) throw new ArgumentException($"no real tokens to measure latent {latent}'s activation at {site}");
        if (!(max > 0)) throw new ArgumentException($"latent {latent} never fires on the given tokens at {site}; its max activation is {max}");
        return OfMaxActivation(max / sae.InputScale);
    }

    /// <summary>Activations (B, T, d) at each site and the real-token mask (B, T), batch by batch; all die with the caller's next scope.</summary>
    static IEnumerable<(Dictionary<string, Tensor> Activations, Tensor Real)> Activations(LlamaForCausalLM model, IReadOnlyList<string> sites,
        IEnumerable<int[]> sequences, StatisticsOptions options)
    {
        var context = options.ContextLength ?? model.Config.MaxPositionEmbeddings;
        var device = model.parameters().First().device;
        foreach (var group in sequences.Chunk(options.BatchSize))
        {
            using var scope = NewDisposeScope();
            using var batch = TokenBatch.RightPadded(group.Select(ids => new TokenSequence(ids)).ToArray(), context, options.PadTokenId, device);
            var acts = ActivationCapture.Run(model, batch.InputIds, sites, batch.AttentionMask);
            var real = PositionMasks.RealTokens(batch.InputIds, batch.AttentionMask, options.ExcludeTokenIds);
            yield return (acts, real);
        }
    }
}
