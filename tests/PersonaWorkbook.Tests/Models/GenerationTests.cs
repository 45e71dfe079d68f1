using PersonaWorkbook.Generation;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Tests.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Generation;

public class GenerationTests
{
    static readonly int[][] Prompts = [[1, 5, 6], [1, 7, 8, 9, 10], [1]];

    [Fact]
    public void GreedyWithCacheEqualsWithoutCache()
    {
        using var model = TinyModels.Build(TinyModels.Qwen2());
        var o = new GenerationOptions { MaxNewTokens = 12, Temperature = 0 };
        var cached = TextGenerator.Generate(model, Prompts, o);
        var uncached = TextGenerator.Generate(model, Prompts, o with { UseKvCache = false });
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(uncached[i].Tokens, cached[i].Tokens);
        Assert.All(cached, s => Assert.Equal(12, s.Tokens.Length));
    }

    [Fact]
    public void BatchedGreedyEqualsOneByOne()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var o = new GenerationOptions { MaxNewTokens = 8, Temperature = 0 };
        var batched = TextGenerator.Generate(model, Prompts, o);
        for (int i = 0; i < Prompts.Length; i++)
            Assert.Equal(TextGenerator.Generate(model, [Prompts[i]], o)[0].Tokens, batched[i].Tokens);
    }

    [Fact]
    public void SamplingIsReproducibleBySeed()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var o = new GenerationOptions { MaxNewTokens = 20, Temperature = 1.0, TopP = 0.9, TopK = 20, Seed = 7 };
        var a = TextGenerator.Generate(model, Prompts, o);
        var b = TextGenerator.Generate(model, Prompts, o);
        var c = TextGenerator.Generate(model, Prompts, o with { Seed = 8 });
        Assert.Equal(a.Select(s => s.Tokens), b.Select(s => s.Tokens));
        Assert.NotEqual(a.SelectMany(s => s.Tokens), c.SelectMany(s => s.Tokens));
    }

    [Fact]
    public void StopTokenEndsARow()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var greedy = TextGenerator.Generate(model, [Prompts[0]], new GenerationOptions { MaxNewTokens = 6, Temperature = 0 })[0].Tokens;
        var stop = greedy[2];
        var cut = TextGenerator.Generate(model, [Prompts[0]], new GenerationOptions { MaxNewTokens = 6, Temperature = 0, StopTokens = [stop] })[0];
        Assert.True(cut.Stopped);
        Assert.Equal(greedy.TakeWhile(t => t != stop), cut.Tokens);
    }

    [Fact]
    public void HooksStayActiveDuringGeneration()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var o = new GenerationOptions { MaxNewTokens = 10, Temperature = 0 };
        var clean = TextGenerator.Generate(model, Prompts, o);
        int responseCalls = 0;
        List<IReadOnlyList<GeneratedSequence>> steered = [];
        using (var h = model.Hooks.Add("blocks.1.hook_resid_post", (x, ctx) =>
               {
                   if (ctx.ResponseMask!.any().item<bool>()) responseCalls++;
                   return x;
               }))
        using (Interventions.AddVector(model.Hooks, "blocks.0.hook_resid_post", randn(32) * 10, positions: Positions.Response))
            steered.Add(TextGenerator.Generate(model, Prompts, o));
        Assert.Equal(9, responseCalls); // every step after the prefill feeds one response token
        // Response-only steering cannot change the first token (sampled from the prompt's last position).
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(clean[i].Tokens[0], steered[0][i].Tokens[0]);
        Assert.NotEqual(clean.SelectMany(s => s.Tokens), steered[0].SelectMany(s => s.Tokens));
        Assert.Equal(clean.Select(s => s.Tokens), TextGenerator.Generate(model, Prompts, o).Select(s => s.Tokens));
    }

    /// <summary>Stacked projections give the separate ones' numbers exactly; Qwen2's biased q/k/v stay separate (stacked, they were a few bits off).</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FusedProjectionsGiveTheSameLogitsBitForBit(bool qwen)
    {
        using var model = TinyModels.Build(qwen ? TinyModels.Qwen2() : TinyModels.Llama());
        using var _ = no_grad();
        var ids = tensor(new long[] { 1, 5, 6, 7, 1, 9, 3, 2 }, [2, 4]);
        var separate = model.Forward(ids);
        var blocks = model.Config.NumHiddenLayers;
        using (model.HoldFusedProjections())
        {
            using (model.HoldFusedProjections()) { }   // holds nest: releasing the inner one keeps the outer's stacks
            Assert.Equal(qwen ? blocks : 2 * blocks, Fusions(model).Count(f => f.IsFused));
            Assert.True(model.Forward(ids).eq(separate).all().item<bool>());
            // A decoding step's input (one position per row) is stacked; a prompt's (four positions) is left to the separate products.
            var qkv = Fusions(model).First();
            if (!qwen) Assert.NotNull(qkv.Outputs(randn(2, 1, model.Config.HiddenSize)));
            Assert.Null(qkv.Outputs(randn(2, 4, model.Config.HiddenSize)));
            using (enable_grad())
                Assert.Null(Fusions(model).First().Outputs(randn(1, model.Config.HiddenSize))); // gradients need the real parameters
        }
        Assert.All(Fusions(model), f => Assert.False(f.IsFused));
        // Longer generations hold the stacks (16 new tokens and more): the same tokens as the uncached path, which holds them too
        var o = new GenerationOptions { MaxNewTokens = 20, Temperature = 0 };
        Assert.Equal(TextGenerator.Generate(model, Prompts, o with { MaxNewTokens = 8 }).Select(s => s.Tokens),
                     TextGenerator.Generate(model, Prompts, o).Select(s => s.Tokens[..8]));
    }

    /// <summary>
    /// The scripted decoding step gives the eager step's logits bit for bit, from left-padded prompts, with and without
    /// grouped keys and values, with stacked projections and without (a layout where stacking was not exact): and it is
    /// what ran.
    /// </summary>
    [Theory]
    [InlineData(2, false)]
    [InlineData(4, false)]
    [InlineData(2, true)]
    public void ScriptedDecodingStepsGiveTheEagerLogitsBitForBit(int kvHeads, bool separateProjections)
    {
        var config = TinyModels.Llama();
        config.NumKeyValueHeads = kvHeads;
        using var model = TinyModels.Build(config, seed: 3);
        const int steps = 12;
        var (eager, eagerScripted) = DecodeLogits(model, scripted: false, steps, separateProjections);
        var (scripted, scriptedSteps) = DecodeLogits(model, scripted: true, steps, separateProjections);
        Assert.Equal(0, eagerScripted);
        Assert.Equal(steps, scriptedSteps);   // the eager run settled the projections' layout
        for (int s = 0; s < steps; s++) Assert.True(scripted[s].eq(eager[s]).all().item<bool>(), $"step {s}");
    }

    [Fact]
    public void HooksAdaptersAndBiasesDecodeEagerly()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        // A new model's first decoding step runs eagerly: it settles whether the stacked projections are exact for the layout.
        Assert.Equal(5, DecodeLogits(model, scripted: true, 6, separateProjections: false).ScriptedSteps);
        using (model.Hooks.Add("blocks.1.hook_resid_post", (x, _) => x + 1.0))
            Assert.Equal(0, DecodeLogits(model, scripted: true, 6, separateProjections: false).ScriptedSteps);
        using (PersonaWorkbook.Lora.LoraModel.Attach(model, new PersonaWorkbook.Lora.LoraConfig { R = 2, LoraAlpha = 4, TargetModules = ["o_proj"] }))
            Assert.Equal(0, DecodeLogits(model, scripted: true, 6, separateProjections: false).ScriptedSteps);
        using var qwen = TinyModels.Build(TinyModels.Qwen2());
        Assert.Equal(0, DecodeLogits(qwen, scripted: true, 6, separateProjections: false).ScriptedSteps);
        Assert.Equal(6, DecodeLogits(model, scripted: true, 6, separateProjections: false).ScriptedSteps);
    }

    /// <summary>Greedy decoding from <see cref="Prompts"/> (left-padded) through the cache: each step's logits (B, V), and the steps the scripted path ran.</summary>
    static (Tensor[] Logits, long ScriptedSteps) DecodeLogits(PersonaWorkbook.Models.LlamaForCausalLM model, bool scripted, int steps, bool separateProjections)
    {
        using var _ = no_grad();
        model.ScriptedDecoding = scripted;
        using var hold = model.HoldFusedProjections();
        if (separateProjections)
            foreach (var f in Fusions(model)) f.Settle((Prompts.Length, true, get_num_threads()), exact: false);
        int maxLen = Prompts.Max(p => p.Length);
        var ids = tensor(Prompts.SelectMany(p => Enumerable.Repeat(0L, maxLen - p.Length).Concat(p.Select(t => (long)t))).ToArray(), [Prompts.Length, maxLen]);
        var mask = cat([ids.ne(0).to_type(ScalarType.Int64), ones(Prompts.Length, steps, ScalarType.Int64)], 1);
        using var cache = new PersonaWorkbook.Models.KVCache(model.Config.NumHiddenLayers, maxLen + steps);
        var logits = new Tensor[steps];
        var next = model.Forward(ids, mask.narrow(1, 0, maxLen), cache: cache)[.., -1, ..].argmax(-1);
        for (int s = 0; s < steps; s++)
        {
            logits[s] = model.Forward(next.unsqueeze(1), mask.narrow(1, 0, maxLen + s + 1), cache: cache)[.., -1, ..];
            next = logits[s].argmax(-1);
        }
        var ran = model.Scripted?.StepsRun ?? 0;
        model.ScriptedDecoding = true;
        return (logits, ran);
    }

    [Fact]
    public void ProjectionsWithAdaptersAreNotFused()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var lora = PersonaWorkbook.Lora.LoraModel.Attach(model, new PersonaWorkbook.Lora.LoraConfig { R = 2, LoraAlpha = 4, TargetModules = ["k_proj"], LayersToTransform = [1] });
        using var _ = no_grad();
        foreach (var a in lora.Layers) a.B.normal_(0, 0.5);
        var ids = tensor(new long[] { 1, 5, 6, 7 }, [1, 4]);
        var adapted = model.Forward(ids);
        using (model.HoldFusedProjections())
        {
            var fused = Fusions(model).Select(f => f.IsFused).ToArray();
            Assert.Equal(2 * model.Config.NumHiddenLayers - 1, fused.Count(f => f));   // all but block 1's q/k/v
            Assert.True(model.Forward(ids).eq(adapted).all().item<bool>());
        }
    }

    static IEnumerable<PersonaWorkbook.Models.FusedProjection> Fusions(PersonaWorkbook.Models.LlamaForCausalLM model) =>
        model.Blocks.SelectMany(l => new[] { l.Attention.Qkv, l.Mlp.GateUp });
}
