using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>
/// A sparse autoencoder over one activation site: f = σ((x·s − b_dec)·W_enc + b_enc), x̂ = (f·W_dec + b_dec) / s,
/// where s is <see cref="InputScale"/> (1 once folded) and σ is the architecture's activation (TopK, BatchTopK's
/// threshold at inference, ReLU, JumpReLU). Public methods take raw activations (..., d_in).
/// W_enc is stored transposed (<see cref="EncoderT"/>, d_sae × d_in) so a latent's encoder weights are one contiguous
/// row, which is what the sparse encoder gradient scatters into; <see cref="W_enc"/> is the SAELens-shaped view.
/// </summary>
public sealed class SparseAutoencoder : IDisposable
{
    public SaeConfig Config { get; }
    /// <summary>W_enc transposed: (d_sae, d_in).</summary>
    public Parameter EncoderT { get; }
    /// <summary>(d_sae)</summary>
    public Parameter b_enc { get; }
    /// <summary>(d_sae, d_in): row i is latent i's direction.</summary>
    public Parameter W_dec { get; }
    /// <summary>(d_in)</summary>
    public Parameter b_dec { get; }
    /// <summary>(d_sae) JumpReLU threshold on pre-activations (BatchTopK inference, JumpReLU); null otherwise.</summary>
    public Tensor? Threshold { get; }
    /// <summary>Multiplier applied to raw activations before encoding (and divided out after decoding).</summary>
    public double InputScale { get; private set; } = 1.0;
    /// <summary>The SAELens folder it was loaded from (<see cref="SaeFiles.Load"/>); null when built in memory.</summary>
    public string? SourceDirectory { get; internal set; }

    // Decoding k rows per token: embedding_bag(sum, per-sample weights) gathers only the active rows of W_dec. The
    // module holds a detached alias of W_dec (same storage, so in-place updates are what it decodes with) and so
    // differentiates only in the activations; SaeObjective scatters W_dec's gradient itself, which is cheaper than
    // embedding_bag's dense weight backward.
    readonly EmbeddingBag decoderBag;

    public SparseAutoencoder(SaeConfig config, Device? device = null, long seed = 0)
    {
        config.Validate();
        Config = config;
        device ??= CPU;
        // Parameters outlive any dispose scope the caller has open; temporaries do not.
        Parameter Owned(Tensor t) => (Parameter)new Parameter(t).DetachFromDisposeScope();
        using (var scope = NewDisposeScope())
        {
            var generator = new Generator((ulong)seed, device);
            // Unit-norm random decoder rows; the encoder starts as the decoder's transpose (OpenAI, sparsify).
            var w = randn(config.DSae, config.DIn, generator: generator, device: device);
            w.div_(w.norm(1, keepdim: true));
            W_dec = Owned(w.clone().DetachFromDisposeScope());
            EncoderT = Owned(w.clone().DetachFromDisposeScope());
        }
        b_enc = Owned(zeros(config.DSae, device: device));
        b_dec = Owned(zeros(config.DIn, device: device));
        if (config.Architecture is SaeArchitecture.BatchTopK or SaeArchitecture.JumpReLU)
            Threshold = zeros(config.DSae, device: device).DetachFromDisposeScope();
        decoderBag = nn.EmbeddingBag_from_pretrained(W_dec.detach().DetachFromDisposeScope(), freeze: true, mode: EmbeddingBagMode.Sum);
    }

    /// <summary>W_enc as SAELens shapes it: (d_in, d_sae), a view of <see cref="EncoderT"/>.</summary>
    public Tensor W_enc => EncoderT.t();

    public Device Device => W_dec.device;

    public IReadOnlyList<Parameter> Parameters => [EncoderT, b_enc, W_dec, b_dec];

    /// <summary>Sets the input scale s; the weights are read as trained on x·s (see <see cref="FoldInputScale"/>).</summary>
    public void SetInputScale(double scale)
    {
        if (!(scale > 0) || double.IsInfinity(scale)) throw new ArgumentException($"input scale must be positive and finite, got {scale}");
        InputScale = scale;
        Config.NormalizeActivations = scale == 1.0 ? "none" : "expected_average_only_in";
    }

    /// <summary>
    /// Folds the input scale into the weights (W_enc·s, W_dec/s, b_dec/s) so the SAE takes raw activations with the
    /// same latents and a reconstruction in raw units; SAELens fold_activation_norm_scaling_factor.
    /// </summary>
    public void FoldInputScale()
    {
        using var _ = no_grad();
        EncoderT.mul_(InputScale);
        W_dec.div_(InputScale);
        b_dec.div_(InputScale);
        SetInputScale(1.0);
    }

    /// <summary>The saved tensors with the input scale folded in, SAELens names and shapes; the caller owns them.</summary>
    public List<KeyValuePair<string, Tensor>> FoldedStateDict()
    {
        using var _ = no_grad();
        var s = InputScale;
        var list = new List<KeyValuePair<string, Tensor>>
        {
            new("W_enc", (EncoderT * s).t().contiguous().cpu()),
            new("b_enc", b_enc.detach().clone().cpu()),
            new("W_dec", (W_dec / s).contiguous().cpu()),
            new("b_dec", (b_dec / s).cpu()),
        };
        if (Threshold is not null) list.Add(new("threshold", Threshold.clone().cpu()));
        return list;
    }

    /// <summary>Pre-activations (N, d_sae) for inputs already multiplied by the input scale (N, d_in).</summary>
    internal Tensor PreActivationsScaled(Tensor xs)
    {
        var centred = Config.ApplyBDecToInput ? xs - b_dec : xs;
        return addmm(b_enc, centred, EncoderT.t(), 1, 1);
    }

    /// <summary>Latent activations (..., d_sae) for raw activations (..., d_in), dense.</summary>
    public Tensor Encode(Tensor x)
    {
        using var scope = NewDisposeScope();
        var flat = Flatten(x);
        var pre = PreActivationsScaled(flat * InputScale);                             // (N, d_sae)
        Tensor f;
        switch (Config.Architecture)
        {
            case SaeArchitecture.TopK:
                var (values, indices) = SparseSelection.TopK(pre, Config.K);
                f = zeros_like(pre).scatter_(1, indices, values.relu());
                break;
            case SaeArchitecture.BatchTopK or SaeArchitecture.JumpReLU:
                f = pre.relu() * pre.gt(Threshold!).to_type(pre.dtype);
                break;
            default:
                f = pre.relu();
                break;
        }
        return f.view([.. x.shape[..^1], Config.DSae]).MoveToOuterDisposeScope();
    }

    /// <summary>Raw-space reconstruction (..., d_in) of latent activations (..., d_sae).</summary>
    public Tensor Decode(Tensor features)
    {
        using var scope = NewDisposeScope();
        var flat = features.reshape(-1, Config.DSae);
        var y = (addmm(b_dec, flat, W_dec, 1, 1) / InputScale).view([.. features.shape[..^1], Config.DIn]);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>x̂ for raw activations (..., d_in); TopK decodes only the k active rows per token.</summary>
    public Tensor Reconstruct(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor y;
        if (Config.Architecture == SaeArchitecture.TopK)
        {
            var flat = Flatten(x);
            var scaled = flat * InputScale;
            var centred = Config.ApplyBDecToInput ? scaled - b_dec : scaled;
            var codes = SparseSelection.PerTokenBlocked(centred, EncoderT, b_enc, Config.K);
            y = (DecodeSparse(codes, codes.PreActivations.relu()) + b_dec) / InputScale;
            y = y.view(x.shape);
        }
        else y = Decode(Encode(x));
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Σ_n activations[n]·W_dec[latent n] per token (B, d_in), without b_dec; differentiable in the activations only
    /// (W_dec's gradient is <c>codesᵀ · ∂L/∂output</c>, which the trainer scatters).
    /// </summary>
    public Tensor DecodeSparse(SparseCodes codes, Tensor activations)
    {
        if (codes.Count == 0) return zeros(codes.Batch, Config.DIn, dtype: W_dec.dtype, device: W_dec.device);
        return decoderBag.forward(codes.Latents, codes.Offsets, activations);
    }

    Tensor Flatten(Tensor x)
    {
        if (x.shape.Length == 0 || x.shape[^1] != Config.DIn)
            throw new ArgumentException($"SAE expects activations with last dimension d_in={Config.DIn}, got [{string.Join(", ", x.shape)}]");
        return x.reshape(-1, Config.DIn).to(W_dec.dtype, W_dec.device);
    }

    /// <summary>Copies weights in (SAELens shapes: W_enc (d_in, d_sae)); used by the file loader.</summary>
    internal void LoadWeights(Tensor wEnc, Tensor bEnc, Tensor wDec, Tensor bDec, Tensor? threshold)
    {
        using var _ = no_grad();
        EncoderT.copy_(wEnc.t());
        b_enc.copy_(bEnc);
        W_dec.copy_(wDec);
        b_dec.copy_(bDec);
        if (threshold is not null) Threshold!.copy_(threshold);
    }

    public void Dispose()
    {
        decoderBag.Dispose();
        foreach (var p in Parameters) p.Dispose();
        Threshold?.Dispose();
    }
}
