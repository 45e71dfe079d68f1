using PersonaWorkbook.Hooks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PersonaWorkbook.Models;

/// <summary>
/// A decoding step — one new token per row, the past from a <see cref="KVCache"/> — of a plain float32 model on the
/// CPU, run as one TorchScript function instead of some fifty TorchSharp calls per block. Each call from .NET crosses
/// into native code and makes a tensor handle; at the organisms' sizes that costs about what the arithmetic does (a
/// 4-block step at batch 8 spent 2.5 of its 5 ms outside the matrix products). The function performs the eager path's
/// operations in the eager path's order on the same kernels, so its logits are the eager step's bit for bit (tested,
/// and checked on the deep organism's evaluation answers). Whatever it does not cover runs the eager path: a hook at any
/// site, LoRA adapters or biases, another dtype or device, gradients, a cache that must grow, and a layout whose stacked
/// projections the eager path does not use (<see cref="FusedProjection"/>: until a first eager step has settled it,
/// or when stacking was not exact). Made by <see cref="LlamaForCausalLM.HoldFusedProjections"/>, whose stacked weights
/// it reads.
/// </summary>
sealed class ScriptedDecodeStep : IDisposable
{
    // The eager path's operations, in its order (RMSNorm.forward, RotaryEmbedding, LlamaAttention's decoding branch,
    // LlamaMLP, the final norm and lm_head). Keep them in step: GenerationTests compares the two bit for bit.
    const string Source = """
        def rms_norm(x: Tensor, w: Tensor, eps: float) -> Tensor:
            x32 = x.float()
            normed = x32 * torch.rsqrt(x32.square().mean([-1], keepdim=True).add(eps))
            return w * normed.to(x.dtype)

        def rotate(x: Tensor, cos: Tensor, signed_sin: Tensor, half: int) -> Tensor:
            return x * cos + x.roll([half], [-1]) * signed_sin

        def decode(ids: Tensor, pos: Tensor, attention_mask: Tensor, embed: Tensor, inv_freq: Tensor,
                   ln_in: List[Tensor], qkv: List[Tensor], qkv_stacked: bool, o: List[Tensor],
                   ln_post: List[Tensor], gate_up: List[Tensor], gate_up_stacked: bool, down: List[Tensor],
                   final_norm: Tensor, head: Tensor, keys: List[Tensor], values: List[Tensor], past: int,
                   n_heads: int, n_kv: int, hd: int, eps: float, scale: float, lowest: float) -> Tensor:
            B = ids.size(0)
            x = torch.embedding(embed, ids)                                          # (B, 1, d)
            pad = attention_mask.eq(0).reshape([B, 1, 1, past + 1])
            mask = torch.zeros([B, 1, 1, past + 1], dtype=x.dtype).masked_fill_(pad, lowest)
            mask.narrow(-1, past, 1).zero_()                                         # (B, 1, 1, T_all)
            freqs = pos.float().unsqueeze(-1) * inv_freq                             # (B, 1, hd/2)
            emb = torch.cat([freqs, freqs], -1).unsqueeze(1)                         # (B, 1, 1, hd)
            half = hd // 2
            sin = emb.sin()
            signed_sin = torch.cat([-sin.narrow(-1, 0, half), sin.narrow(-1, half, half)], -1).to(x.dtype)
            cos = emb.cos().to(x.dtype)
            g = n_heads // n_kv
            for l in range(len(o)):
                h = rms_norm(x, ln_in[l], eps)
                if qkv_stacked:
                    a = torch.linear(h, qkv[l])                                      # (B, 1, (nh + 2 nkv) hd)
                    q_out = a.narrow(-1, 0, n_heads * hd)
                    k_out = a.narrow(-1, n_heads * hd, n_kv * hd)
                    v_out = a.narrow(-1, (n_heads + n_kv) * hd, n_kv * hd)
                else:
                    q_out = torch.linear(h, qkv[3 * l])
                    k_out = torch.linear(h, qkv[3 * l + 1])
                    v_out = torch.linear(h, qkv[3 * l + 2])
                q = rotate(q_out.view([B, 1, n_heads, hd]).transpose(1, 2), cos, signed_sin, half)   # (B, nh, 1, hd)
                k = rotate(k_out.view([B, 1, n_kv, hd]).transpose(1, 2), cos, signed_sin, half)      # (B, nkv, 1, hd)
                v = v_out.view([B, 1, n_kv, hd]).transpose(1, 2)
                keys[l].narrow(2, past, 1).copy_(k)
                values[l].narrow(2, past, 1).copy_(v)
                k_all = keys[l].narrow(2, 0, past + 1)                               # (B, nkv, T_all, hd)
                v_all = values[l].narrow(2, 0, past + 1)
                scores = torch.matmul(q.reshape([B, n_kv, g, hd]), k_all.transpose(2, 3)).mul_(scale)  # (B, nkv, g, T_all)
                scores.add_(mask)
                y = torch.matmul(scores.softmax(-1).to(v_all.dtype), v_all)         # (B, nkv, g, hd)
                x = x + torch.linear(y.view([B, 1, n_heads * hd]), o[l])
                h = rms_norm(x, ln_post[l], eps)
                if gate_up_stacked:
                    gu = torch.linear(h, gate_up[l])                                 # (B, 1, 2 ffn)
                    ffn = gu.size(-1) // 2
                    gate = gu.narrow(-1, 0, ffn).contiguous()
                    up = gu.narrow(-1, ffn, ffn)
                else:
                    gate = torch.linear(h, gate_up[2 * l])
                    up = torch.linear(h, gate_up[2 * l + 1])
                x = x + torch.linear(torch.silu(gate) * up, down[l])
            return torch.linear(rms_norm(x, final_norm, eps), head)                  # (B, 1, V)
        """;

    static readonly Lazy<jit.CompilationUnit> Unit = new(() => jit.compile(Source + "\n"));   // the parser wants the last line ended

    readonly Tensor embed, invFreq, finalNorm, head;
    // Each block's projections both ways: the stacked weights (FusedProjection's, alive while the hold that made this
    // step lasts) and the separate ones, for layouts where the eager path does not stack.
    readonly Tensor[] lnIn, lnPost, o, down, qkvStacked, qkvParts, gateUpStacked, gateUpParts;
    readonly FusedProjection[] qkv, gateUp;
    // The script's numbers as Scalars held here: TorchSharp passes a long or double argument as a Scalar it makes and
    // does not keep alive through the call (see RMSNorm.eps).
    readonly Scalar nHeads, nKvHeads, headDim, eps, scale, lowest;
    long stepsRun;

    /// <summary>Steps this instance has run (tests check that the scripted path, not the eager one, produced what they compare).</summary>
    internal long StepsRun => Interlocked.Read(ref stepsRun);

    ScriptedDecodeStep(LlamaForCausalLM model, LlamaModel body, IReadOnlyList<LlamaDecoderLayer> blocks, Tensor headWeight)
    {
        var config = model.Config;
        nHeads = ((long)config.NumAttentionHeads).ToScalar();
        nKvHeads = ((long)config.NumKvHeads).ToScalar();
        headDim = ((long)config.HeadDim).ToScalar();
        eps = config.RmsNormEps.ToScalar();
        scale = (1.0 / Math.Sqrt(config.HeadDim)).ToScalar();
        lowest = ((double)float.MinValue).ToScalar();   // the eager mask's finfo(float32).min
        embed = body.EmbedTokens.weight!;
        invFreq = body.Rotary.InvFreq;
        finalNorm = body.Norm.Weight;
        head = headWeight;
        lnIn = blocks.Select(b => b.InputNorm.Weight).ToArray();
        lnPost = blocks.Select(b => b.PostAttentionNorm.Weight).ToArray();
        o = blocks.Select(b => (Tensor)b.Attention.OProj.weight!).ToArray();
        down = blocks.Select(b => (Tensor)b.Mlp.DownProj.weight!).ToArray();
        qkv = blocks.Select(b => b.Attention.Qkv).ToArray();
        gateUp = blocks.Select(b => b.Mlp.GateUp).ToArray();
        qkvStacked = qkv.Select(f => f.Weight!).ToArray();
        gateUpStacked = gateUp.Select(f => f.Weight!).ToArray();
        qkvParts = qkv.SelectMany(f => f.PartWeights).ToArray();
        gateUpParts = gateUp.SelectMany(f => f.PartWeights).ToArray();
    }

    /// <summary>The step for <paramref name="model"/> while its projections are stacked, or null where it would not give the eager numbers.</summary>
    internal static ScriptedDecodeStep? For(LlamaForCausalLM model, LlamaModel body, Linear lmHead)
    {
        var blocks = body.Layers.ToArray();
        var linears = blocks.SelectMany(b => b.Attention.Projections.Concat(b.Mlp.Projections)).Append(lmHead).ToArray();
        bool plain = model.parameters().All(p => p.device_type == DeviceType.CPU && p.dtype == ScalarType.Float32)
                     && linears.All(l => l.bias is null && !ForwardHooks.Any(l))
                     && blocks.All(b => b.Attention.Qkv.IsFused && b.Mlp.GateUp.IsFused);
        return plain ? new ScriptedDecodeStep(model, body, blocks, lmHead.weight!) : null;
    }

    /// <summary>
    /// Logits (B, 1, V) of one new token per row, its keys and values written into <paramref name="cache"/>; null when
    /// this step is the eager path's to run (see the class).
    /// </summary>
    /// <param name="inputIds">(B, 1)</param>
    /// <param name="attentionMask">(B, T_past + 1), 1 for real tokens, T_past the cache's length (the caller checks both shapes)</param>
    /// <param name="positionIds">(B, 1)</param>
    internal Tensor? TryStep(Tensor inputIds, Tensor attentionMask, Tensor positionIds, KVCache cache, HookRunner hooks)
    {
        if (hooks.Any || is_grad_enabled()) return null;
        long B = inputIds.shape[0];
        if (cache.Reserved(B, 1) is not var (keys, values, past)) return null;
        // The eager path's choice for this layout (FusedProjection.Outputs): a decoding step's normed input is contiguous, B rows.
        var layout = (B, true, get_num_threads());
        if (Uniform(qkv, layout) is not bool stackQkv || Uniform(gateUp, layout) is not bool stackGateUp) return null;
        using var pastLength = past.ToScalar();
        var logits = Unit.Value.invoke<Tensor>("decode",
            inputIds, positionIds, attentionMask, embed, invFreq,
            lnIn, stackQkv ? qkvStacked : qkvParts, stackQkv, o,
            lnPost, stackGateUp ? gateUpStacked : gateUpParts, stackGateUp, down,
            finalNorm, head, keys, values, pastLength, nHeads, nKvHeads, headDim, eps, scale, lowest);
        cache.Advance(1);
        Interlocked.Increment(ref stepsRun);
        return logits;
    }

    public void Dispose()
    {
        foreach (var s in new[] { nHeads, nKvHeads, headDim, eps, scale, lowest }) s.Dispose();
    }

    /// <summary>Whether every block's projection stacks for this layout (true), none does (false), or it is not settled or mixed (null).</summary>
    static bool? Uniform(FusedProjection[] projections, (long Rows, bool Contiguous, int Threads) layout)
    {
        var first = projections[0].ExactFor(layout);
        return first is not null && projections.All(p => p.ExactFor(layout) == first) ? first : null;
    }
}
