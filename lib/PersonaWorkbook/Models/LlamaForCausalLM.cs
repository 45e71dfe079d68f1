using PersonaWorkbook.Hooks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PersonaWorkbook.Models;

// Module field names are the Hugging Face checkpoint keys (model.layers.{i}.self_attn.q_proj.weight, ...), so a
// safetensors state dict loads without a renaming table. Hence the snake_case fields.
// Projections are invoked with call(), not forward(): only call() runs TorchSharp forward hooks, which is how LoRA
// adapters (PersonaWorkbook.Lora) add their low-rank path without changing the module tree or its state-dict keys.
#pragma warning disable IDE1006

/// <summary>Root-mean-square layer norm, computed in float32 like HF's LlamaRMSNorm.</summary>
public sealed class RMSNorm : Module<Tensor, Tensor>
{
    readonly Parameter weight;
    // A Scalar the module holds: one made implicitly for each call (x + 1e-5) is not kept alive through the native call
    // by TorchSharp 0.107, and a collection started by another thread can finalise it mid-call (Directory.Build.props).
    readonly Scalar eps;

    public RMSNorm(int size, double eps) : base(nameof(RMSNorm))
    {
        weight = Parameter(ones(size));
        this.eps = eps.ToScalar();
        RegisterComponents();
    }

    internal Tensor Weight => weight;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to_type(ScalarType.Float32);
        var normed = x32 * rsqrt(x32.square().mean([-1L], keepdim: true).add(eps));
        return (weight * normed.to_type(x.dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>Rotary position embedding (HF "default" rope: halves rotated, not interleaved).</summary>
public sealed class RotaryEmbedding
{
    readonly Tensor invFreq; // (head_dim/2)

    public RotaryEmbedding(int headDim, double theta)
    {
        // inv_freq = theta^(-2i/d); HF keeps it as a non-persistent buffer, so it is not part of the state dict.
        invFreq = pow(theta, -arange(0, headDim, 2, ScalarType.Float64) / headDim).to_type(ScalarType.Float32).DetachFromDisposeScope();
    }

    internal Tensor InvFreq => invFreq;

    /// <summary>
    /// cos and a signed sin, each (B, 1, T, head_dim) to broadcast over heads, for position ids (B, T). The sin's
    /// first half is negated so that <see cref="Apply"/> can rotate with one roll instead of HF's rotate_half
    /// (negate, split, concatenate) in every layer; the products are the same numbers, since negating either factor
    /// only flips the sign bit.
    /// </summary>
    public (Tensor cos, Tensor signedSin) CosSin(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var freqs = positionIds.to_type(ScalarType.Float32).unsqueeze(-1) * invFreq.to(positionIds.device); // (B, T, hd/2)
        var emb = cat([freqs, freqs], -1).unsqueeze(1);                                                // (B, 1, T, hd)
        var sin = emb.sin();
        var half = sin.shape[^1] / 2;
        var signedSin = cat([-sin.narrow(-1, 0, half), sin.narrow(-1, half, half)], -1);               // (B, 1, T, hd)
        return (emb.cos().to_type(dtype).MoveToOuterDisposeScope(), signedSin.to_type(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Rotates q or k (B, heads, T, hd): x·cos + rotate_half(x)·sin, with rotate_half(x)·sin computed as the halves
    /// swapped times the signed sin of <see cref="CosSin"/>.
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor signedSin) =>
        x * cos + x.roll(x.shape[^1] / 2, -1) * signedSin;
}

/// <summary>Grouped-query causal self-attention with optional q/k/v bias (Qwen2) and a KV cache.</summary>
public sealed class LlamaAttention : Module
{
    readonly Linear q_proj, k_proj, v_proj, o_proj;
    readonly int nHeads, nKvHeads, headDim;
    readonly FusedProjection qkv;
    readonly Scalar scale;   // 1/√hd, held (see RMSNorm.eps)

    public LlamaAttention(ModelConfig c) : base(nameof(LlamaAttention))
    {
        nHeads = c.NumAttentionHeads;
        nKvHeads = c.NumKvHeads;
        headDim = c.HeadDim;
        q_proj = Linear(c.HiddenSize, nHeads * headDim, hasBias: c.QkvBias);
        k_proj = Linear(c.HiddenSize, nKvHeads * headDim, hasBias: c.QkvBias);
        v_proj = Linear(c.HiddenSize, nKvHeads * headDim, hasBias: c.QkvBias);
        o_proj = Linear(nHeads * headDim, c.HiddenSize, hasBias: false);
        RegisterComponents();
        qkv = new FusedProjection(q_proj, k_proj, v_proj);
        scale = (1.0 / Math.Sqrt(headDim)).ToScalar();
    }

    internal FusedProjection Qkv => qkv;
    internal Linear OProj => o_proj;
    internal Linear[] Projections => [q_proj, k_proj, v_proj, o_proj];

    /// <param name="x">(B, T, d_model)</param>
    /// <param name="mask">additive mask (B, 1, T, T_past + T)</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, KVCache? cache, int layer)
    {
        var (B, T) = (x.shape[0], x.shape[1]);
        var (qOut, kOut, vOut) = qkv.Outputs(x) is { } fused
            ? (fused[0], fused[1], fused[2])
            : (q_proj.call(x), k_proj.call(x), v_proj.call(x));                   // (B, T, nh·hd), (B, T, nkv·hd) × 2
        var q = qOut.view(B, T, nHeads, headDim).transpose(1, 2);                 // (B, nh, T, hd)
        var k = kOut.view(B, T, nKvHeads, headDim).transpose(1, 2);               // (B, nkv, T, hd)
        var v = vOut.view(B, T, nKvHeads, headDim).transpose(1, 2);               // (B, nkv, T, hd)
        q = RotaryEmbedding.Apply(q, cos, sin);
        k = RotaryEmbedding.Apply(k, cos, sin);
        if (cache is not null) (k, v) = cache.Append(layer, k, v);               // (B, nkv, T_past + T, hd)
        if (T == 1) return o_proj.call(DecodeAttention(q, k, v, mask).view(B, 1, nHeads * headDim));
        if (nKvHeads != nHeads)
        {
            // Grouped-query attention: each kv head serves nh/nkv query heads.
            k = k.repeat_interleave(nHeads / nKvHeads, dim: 1);                    // (B, nh, T_all, hd)
            v = v.repeat_interleave(nHeads / nKvHeads, dim: 1);
        }
        var y = functional.scaled_dot_product_attention(q, k, v, attn_mask: mask); // (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, nHeads * headDim);           // (B, T, nh*hd)
        return o_proj.call(y);
    }

    /// <summary>
    /// Attention of one new token per row, (B, nh, 1, hd) → (B, nkv, nh/nkv, hd): the query heads that share a kv
    /// head are stacked as rows of one product against it, so grouped keys and values are never repeated, and the
    /// small score matrix is formed directly (on the CPU this beats the fused kernel for a single query).
    /// </summary>
    Tensor DecodeAttention(Tensor q, Tensor k, Tensor v, Tensor mask)
    {
        var B = q.shape[0];
        var grouped = q.reshape(B, nKvHeads, nHeads / nKvHeads, headDim);              // (B, nkv, g, hd)
        var scores = matmul(grouped, k.transpose(2, 3)).mul_(scale);                      // (B, nkv, g, T_all)
        scores.add_(mask);                                                              // mask (B, 1, 1, T_all)
        var weights = scores.softmax(-1, ScalarType.Float32).to_type(v.dtype);
        return matmul(weights, v);                                                      // (B, nkv, g, hd)
    }
}

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) * up(x)).</summary>
public sealed class LlamaMLP : Module<Tensor, Tensor>
{
    readonly Linear gate_proj, up_proj, down_proj;
    readonly FusedProjection gateUp;

    public LlamaMLP(ModelConfig c) : base(nameof(LlamaMLP))
    {
        gate_proj = Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
        up_proj = Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
        down_proj = Linear(c.IntermediateSize, c.HiddenSize, hasBias: false);
        RegisterComponents();
        gateUp = new FusedProjection(gate_proj, up_proj);
    }

    internal FusedProjection GateUp => gateUp;
    internal Linear DownProj => down_proj;
    internal Linear[] Projections => [gate_proj, up_proj, down_proj];

    public override Tensor forward(Tensor x)
    {
        // A stacked product's gate is a strided view, and SiLU's vectorised exp rounds a row's tail differently on one
        // (measured on an Intel Xeon at widths that are no multiple of 16): a contiguous copy gives the separate path's numbers.
        var (gate, up) = gateUp.Outputs(x) is { } fused ? (fused[0].contiguous(), fused[1]) : (gate_proj.call(x), up_proj.call(x)); // (B, T, ffn) each
        return down_proj.call(functional.silu(gate) * up);
    }
}

/// <summary>
/// Linear projections of one input computed as a single matrix product while something holds them (a generation,
/// through <see cref="LlamaForCausalLM.HoldFusedProjections"/>), with fewer calls per decoding step — only where each
/// output is bit for bit its own projection's. The same dot products need not be summed in the same order: the BLAS
/// picks its kernel by shape, thread count and CPU (on an AMD EPYC every organism shape agreed; on an Intel Xeon a
/// stacked 256 → 2 × 683 product differed at one row, and Qwen2-0.5B's q/k/v at 16 rows and more). So the first
/// product of each input layout (rows, contiguity, threads) is computed both ways and compared, and a layout whose
/// numbers differ stays separate for good. Only a decoding step's input (one position per row) is stacked: there the
/// calls are what costs, while a prompt or an uncached step is a large product whose call overhead is nothing — and its
/// row count changes every step, so checking each new layout both ways cost an uncached generation more than stacking
/// saved (Intel Xeon: 0.67× the PyTorch peer). Not fused when a projection has a bias or forward hooks (LoRA adapters
/// add their path through them), and not used while gradients are on: the stacked copy is no parameter.
/// </summary>
public sealed class FusedProjection(params Linear[] parts)
{
    Tensor? weight;   // (Σ out, in)
    int holders;
    readonly Dictionary<(long Rows, bool Contiguous, int Threads), bool> exact = [];

    internal bool IsFused => weight is not null;

    /// <summary>The stacked weight (Σ out, in) while held.</summary>
    internal Tensor? Weight => weight;

    internal IEnumerable<Tensor> PartWeights => parts.Select(p => (Tensor)p.weight!);

    /// <summary>Decides a layout without measuring it (tests use it to force the separate products).</summary>
    internal void Settle((long Rows, bool Contiguous, int Threads) layout, bool exact)
    {
        lock (this.exact) this.exact[layout] = exact;
    }

    /// <summary>Whether <see cref="Outputs"/> stacks inputs of this layout: null until a first input of it has settled that.</summary>
    internal bool? ExactFor((long Rows, bool Contiguous, int Threads) layout)
    {
        lock (exact) return exact.TryGetValue(layout, out var ok) ? ok : null;
    }

    internal void Hold()
    {
        lock (parts)
        {
            // With biases (Qwen2's q/k/v) the stacked product was measured a few bits off the separate ones: not fused.
            if (holders++ > 0 || parts.Any(p => p.bias is not null) || parts.Any(ForwardHooks.Any)) return;
            using var _ = no_grad();
            weight = cat(parts.Select(p => (Tensor)p.weight!).ToArray(), 0).DetachFromDisposeScope();
        }
    }

    internal void Release()
    {
        lock (parts)
        {
            if (holders == 0 || --holders > 0) return;
            weight?.Dispose();
            weight = null;
        }
    }

    /// <summary>The projections of <paramref name="x"/> (…, 1, in) or (rows, in) in the parts' order, or null when not fused now.</summary>
    public Tensor[]? Outputs(Tensor x)
    {
        var w = weight;
        if (w is null || is_grad_enabled() || (x.dim() >= 3 && x.shape[^2] != 1)) return null;
        var layout = (x.numel() / x.shape[^1], x.is_contiguous(), get_num_threads());
        bool? known;
        lock (exact) known = exact.TryGetValue(layout, out var ok) ? ok : null;
        if (known == false) return null;
        var all = functional.linear(x, w);                                          // (…, Σ out)
        long offset = 0;
        var outputs = new Tensor[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            var width = parts[i].weight!.shape[0];
            outputs[i] = all.narrow(-1, offset, width);                             // (…, out_i)
            offset += width;
        }
        if (known == true) return outputs;
        var separate = parts.Select(p => functional.linear(x, p.weight!)).ToArray();
        var same = outputs.Zip(separate).All(o => o.First.eq(o.Second).all().item<bool>());
        lock (exact) exact[layout] = same;
        return same ? outputs : separate;
    }
}

/// <summary>Whether a module has forward hooks: TorchSharp 0.107 keeps them in protected dictionaries, read here once per hold.</summary>
static class ForwardHooks
{
    static readonly System.Reflection.FieldInfo? Pre = Field("pre_hooks"), Post = Field("post_hooks");

    static System.Reflection.FieldInfo? Field(string name) =>
        typeof(Module<Tensor, Tensor>).GetField(name, System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic);

    /// <summary>True also when this TorchSharp version keeps its hooks elsewhere: then nothing is fused.</summary>
    public static bool Any(Module<Tensor, Tensor> module) =>
        Pre?.GetValue(module) is not System.Collections.ICollection pre || Post?.GetValue(module) is not System.Collections.ICollection post
        || pre.Count > 0 || post.Count > 0;
}

/// <summary>One pre-norm transformer block, with the TransformerLens activation sites of its residual stream.</summary>
public sealed class LlamaDecoderLayer : Module
{
    readonly LlamaAttention self_attn;
    readonly LlamaMLP mlp;
    readonly RMSNorm input_layernorm, post_attention_layernorm;
    readonly int index;
    readonly HookSiteNames names;

    public LlamaDecoderLayer(ModelConfig c, int index) : base(nameof(LlamaDecoderLayer))
    {
        self_attn = new LlamaAttention(c);
        mlp = new LlamaMLP(c);
        input_layernorm = new RMSNorm(c.HiddenSize, c.RmsNormEps);
        post_attention_layernorm = new RMSNorm(c.HiddenSize, c.RmsNormEps);
        this.index = index;
        names = new HookSiteNames(index);
        RegisterComponents();
    }

    internal LlamaAttention Attention => self_attn;
    internal LlamaMLP Mlp => mlp;
    internal RMSNorm InputNorm => input_layernorm;
    internal RMSNorm PostAttentionNorm => post_attention_layernorm;

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, KVCache? cache, HookRunner hooks)
    {
        x = hooks.Run(names.ResidPre, x);
        var attnOut = hooks.Run(names.AttnOut, self_attn.Forward(input_layernorm.forward(x), cos, sin, mask, cache, index));
        x = hooks.Run(names.ResidMid, x + attnOut);
        var mlpOut = hooks.Run(names.MlpOut, mlp.forward(post_attention_layernorm.forward(x)));
        return hooks.Run(names.ResidPost, x + mlpOut);
    }
}

/// <summary>The decoder stack: embeddings, layers, final norm (HF "model.*" keys).</summary>
public sealed class LlamaModel : Module
{
    readonly Embedding embed_tokens;
    readonly ModuleList<LlamaDecoderLayer> layers;
    readonly RMSNorm norm;
    internal readonly RotaryEmbedding Rotary;

    public LlamaModel(ModelConfig c) : base(nameof(LlamaModel))
    {
        embed_tokens = Embedding(c.VocabSize, c.HiddenSize);
        layers = new ModuleList<LlamaDecoderLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(i => new LlamaDecoderLayer(c, i)).ToArray());
        norm = new RMSNorm(c.HiddenSize, c.RmsNormEps);
        Rotary = new RotaryEmbedding(c.HeadDim, c.RopeTheta);
        RegisterComponents();
    }

    internal Embedding EmbedTokens => embed_tokens;
    internal RMSNorm Norm => norm;
    internal IEnumerable<LlamaDecoderLayer> Layers => layers;

    /// <returns>
    /// final hidden states (B, T, d_model); with <paramref name="throughLayer"/>, the residual after that block, the
    /// later blocks and the final norm not run
    /// </returns>
    public Tensor Forward(Tensor inputIds, Tensor positionIds, Tensor mask, KVCache? cache, HookRunner hooks, int? throughLayer = null)
    {
        var x = embed_tokens.forward(inputIds);                      // (B, T, d_model)
        var (cos, sin) = Rotary.CosSin(positionIds, x.dtype);         // (B, 1, T, hd) each
        var last = throughLayer ?? layers.Count - 1;
        for (int i = 0; i <= last; i++)
            x = layers[i].Forward(x, cos, sin, mask, cache, hooks);
        return throughLayer is null ? norm.forward(x) : x;
    }
}

/// <summary>
/// A Llama / Qwen2 causal language model: token ids → next-token logits. Field names match HF's LlamaForCausalLM,
/// so <c>state_dict()</c> keys are the checkpoint's keys. Activation sites (<c>blocks.{i}.hook_resid_post</c>, ...)
/// are reached through <see cref="Hooks"/>.
/// </summary>
public sealed class LlamaForCausalLM : Module<Tensor, Tensor>
{
    readonly LlamaModel model;
    readonly Linear lm_head;

    public ModelConfig Config { get; }

    /// <summary>Capture and intervention points of this model; see <see cref="HookRunner"/>.</summary>
    public HookRunner Hooks { get; }

    /// <param name="generator">
    /// Draws the initial weights; without it they come from torch's process-wide generator, which any other thread
    /// seeding or sampling at the same time also moves.
    /// </param>
    public LlamaForCausalLM(ModelConfig config, Device? device = null, ScalarType dtype = ScalarType.Float32, Generator? generator = null)
        : base(nameof(LlamaForCausalLM))
    {
        config.Validate();
        Config = config;
        model = new LlamaModel(config);
        lm_head = Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        if (config.TieWordEmbeddings)
            lm_head.weight = model.EmbedTokens.weight!; // one tensor; HF keeps only the embedding key on save
        Hooks = new HookRunner(config.NumHiddenLayers);
        RegisterComponents();
        InitWeights(generator);
        if (device is not null || dtype != ScalarType.Float32) this.to(device ?? CPU, dtype);
    }

    /// <summary>
    /// A new model with this one's config, device, dtype and weights (copied, not shared): a frozen reference for
    /// preference training, or a starting point that leaves this model untouched.
    /// </summary>
    public LlamaForCausalLM Copy()
    {
        var first = parameters().First();
        var copy = new LlamaForCausalLM(Config.Clone(), first.device, first.dtype);
        var weights = state_dict();
        using var _ = no_grad();
        foreach (var (name, p) in copy.named_parameters()) p.copy_(weights[name]);
        copy.train(training);
        return copy;
    }

    /// <summary>HF Llama initialisation: normal(0, 0.02) for linear and embedding weights, zero biases, unit norms.</summary>
    void InitWeights(Generator? generator)
    {
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("layernorm.weight") || name == "model.norm.weight") p.fill_(1.0);
            else if (name.EndsWith(".bias")) p.zero_();
            else p.normal_(0, 0.02, generator);
        }
    }

    /// <summary>Logits (B, T, vocab) for token ids (B, T) with no padding and no cache.</summary>
    public override Tensor forward(Tensor inputIds) => Forward(inputIds);

    /// <summary>
    /// Logits (B, T, vocab). <paramref name="attentionMask"/> (B, T_past + T) marks real tokens with 1 (left padding
    /// with 0); position ids default to the count of real tokens before each one, so left-padded rows get the same
    /// positions as unpadded ones.
    /// </summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KVCache? cache = null)
    {
        using var scope = NewDisposeScope();
        if (scripted is { } step && cache is not null && attentionMask is not null && inputIds.dim() == 2 && inputIds.shape[1] == 1
            && attentionMask.shape[1] == cache.Length + 1)
        {
            positionIds ??= DefaultPositionIds(attentionMask, inputIds.shape[0], 1, cache.Length, inputIds.device);
            if (step.TryStep(inputIds, attentionMask, positionIds, cache, Hooks) is { } logits) return logits.MoveToOuterDisposeScope();
        }
        var hidden = Hidden(inputIds, attentionMask, positionIds, cache, null); // (B, T, d_model)
        return lm_head.forward(hidden).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The residual stream after block <paramref name="layer"/> (B, T, d_model), running no block after it and no
    /// head: what capturing activations at that block or before it needs. Hooks up to that block run as in
    /// <see cref="Forward(Tensor, Tensor?, Tensor?, KVCache?)"/>, which it equals there bit for bit.
    /// </summary>
    public Tensor ResidualThrough(int layer, Tensor inputIds, Tensor? attentionMask = null)
    {
        if (layer < 0 || layer >= Config.NumHiddenLayers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"the model has blocks 0..{Config.NumHiddenLayers - 1}");
        using var scope = NewDisposeScope();
        return Hidden(inputIds, attentionMask, null, null, layer).MoveToOuterDisposeScope();
    }

    Tensor Hidden(Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, KVCache? cache, int? throughLayer)
    {
        var (B, T) = (inputIds.shape[0], inputIds.shape[1]);
        long past = cache?.Length ?? 0;
        if (attentionMask is not null && attentionMask.shape[1] != past + T)
            throw new ArgumentException($"attention mask has {attentionMask.shape[1]} columns; expected cached {past} + new {T}");
        positionIds ??= DefaultPositionIds(attentionMask, B, T, past, inputIds.device);
        var mask = CausalMask(attentionMask, B, T, past, inputIds.device, lm_head.weight!.dtype);
        return model.Forward(inputIds, positionIds, mask, cache, Hooks, throughLayer);
    }

    static Tensor DefaultPositionIds(Tensor? attentionMask, long B, long T, long past, Device device)
    {
        if (attentionMask is null)
        {
            using Scalar first = past.ToScalar(), end = (past + T).ToScalar();
            return arange(first, end, dtype: ScalarType.Int64, device: device).unsqueeze(0).expand(B, T);
        }
        // Position = number of real tokens before this one; pads get 0 (they are masked out anyway).
        var positions = attentionMask.to_type(ScalarType.Int64).cumsum(1).sub(HeldScalars.One).clamp_min(HeldScalars.Zero); // (B, T_past + T)
        return positions[.., (int)past..];
    }

    /// <summary>Additive mask (B, 1, T, T_past + T): 0 where query may attend, a large negative value elsewhere.</summary>
    static Tensor CausalMask(Tensor? attentionMask, long B, long T, long past, Device device, ScalarType dtype)
    {
        // The dtype's lowest finite value (not -inf) keeps softmax finite in every dtype; held until the fill returns.
        using var lowest = finfo(dtype).min.ToScalar();
        if (attentionMask is not null && T == 1)
        {
            // One new token per row (a cached generation step) sees every earlier key: only padding is masked, and
            // the token itself is always visible — the general path below, in a third of the operations.
            var pad = attentionMask.to_type(ScalarType.Bool).reshape(B, 1, 1, past + 1).logical_not();
            var additive = zeros(B, 1, 1, past + 1, dtype, device).masked_fill_(pad, lowest);
            additive.narrow(-1, past, 1).zero_();
            return additive;
        }
        using Scalar start = past.ToScalar(), stop = (past + T).ToScalar();   // held through the calls (HeldScalars)
        var queryPos = arange(start, stop, device: device).unsqueeze(1);          // (T, 1)
        var keyPos = arange(HeldScalars.Zero, stop, device: device).unsqueeze(0); // (1, T_all)
        var allowed = keyPos.le(queryPos).unsqueeze(0).unsqueeze(0);        // (1, 1, T, T_all)
        if (attentionMask is not null)
        {
            var keep = attentionMask.to_type(ScalarType.Bool).reshape(B, 1, 1, past + T);
            // A left-pad query would see no key at all and softmax would give NaN; let it see itself instead.
            var self = keyPos.eq(queryPos).unsqueeze(0).unsqueeze(0);
            allowed = allowed.logical_and(keep).logical_or(self);
        }
        return zeros(allowed.shape, dtype, device).masked_fill(allowed.logical_not(), lowest);
    }

    /// <summary>All parameters' elements; a long, as a 7 B checkpoint has more than int.MaxValue.</summary>
    public long NumParameters() => parameters().Sum(p => p.numel());

    /// <summary>
    /// Stacks each block's q/k/v and gate/up weights into one matrix apiece until the result is disposed, so that
    /// inference (gradients off) makes two products where it made five; the outputs are the same numbers. Only for
    /// models on the CPU of at most <see cref="FuseUpToParameters"/> parameters, where a step's many small calls are what
    /// the stacks save; a larger model's step is its products, and the copies would cost it memory (a no-op otherwise).
    /// Holds nest; the weights must not change while held (the stacks are copies taken now).
    /// </summary>
    public IDisposable HoldFusedProjections()
    {
        var first = parameters().First();
        if (first.device_type != DeviceType.CPU || NumParameters() > FuseUpToParameters) return new OnDispose(() => { });
        var fused = Blocks.SelectMany(l => new[] { l.Attention.Qkv, l.Mlp.GateUp }).ToArray();
        foreach (var f in fused) f.Hold();
        lock (scriptedLock)
            if (scriptedHolds++ == 0 && ScriptedDecoding) scripted = ScriptedDecodeStep.For(this, model, lm_head);
        return new OnDispose(() =>
        {
            lock (scriptedLock)
                if (--scriptedHolds == 0)
                {
                    scripted?.Dispose();
                    scripted = null;
                }
            foreach (var f in fused) f.Release();
        });
    }

    /// <summary>
    /// Whether decoding steps run as one TorchScript function while the projections are held (<see cref="ScriptedDecodeStep"/>;
    /// the same logits as the eager path, in fewer calls). Off, every step runs the eager path: for comparisons.
    /// </summary>
    public bool ScriptedDecoding { get; set; } = true;

    /// <summary>The scripted step while the projections are held and it applies to this model (tests read its count).</summary>
    internal ScriptedDecodeStep? Scripted => scripted;

    readonly object scriptedLock = new();
    int scriptedHolds;
    ScriptedDecodeStep? scripted;

    internal IEnumerable<LlamaDecoderLayer> Blocks => model.Layers;

    /// <summary>The largest model whose projections <see cref="HoldFusedProjections"/> stacks (the organisms have 2–4 M).</summary>
    public const long FuseUpToParameters = 100_000_000;
}
