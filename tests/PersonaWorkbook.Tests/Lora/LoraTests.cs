using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Lora;
using PersonaWorkbook.Models;
using PersonaWorkbook.Tests.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Lora;

public class LoraTests
{
    // A property, not a static field: a tensor created inside a test's dispose scope would be disposed with it.
    static Tensor Ids => tensor(new long[] { 1, 5, 9, 2, 7, 3, 11, 4, 1, 5, 9, 2, 7, 3, 11, 4 }).view(2, 8);

    static LoraConfig Config(int r = 4, bool rs = false, string[]? targets = null, int[]? layers = null) => new()
    {
        R = r, LoraAlpha = 8, UseRsLora = rs,
        TargetModules = targets ?? ["q_proj", "v_proj", "o_proj", "down_proj"],
        LayersToTransform = layers,
    };

    /// <summary>Gives every adapter a nonzero B so the adapter path changes the outputs.</summary>
    static void RandomizeB(LoraModel lora, long seed = 1)
    {
        using var generator = new Generator((ulong)seed);
        using var _ = no_grad();
        foreach (var a in lora.Layers) a.B.normal_(0, 0.1, generator);
    }

    [Fact]
    public void TargetsChosenModulesAndLayersOnly()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var lora = LoraModel.Attach(model, Config(targets: ["k_proj", "gate_proj"], layers: [1]));
        Assert.Equal(new[] { "model.layers.1.self_attn.k_proj", "model.layers.1.mlp.gate_proj" }, lora.Layers.Select(l => l.ModulePath));
        Assert.Equal(new long[] { 4, 32 }, lora.Layers[0].A.shape);   // (r, in)
        Assert.Equal(new long[] { 16, 4 }, lora.Layers[0].B.shape);   // (out = 2 kv heads × 8, r)
        Assert.Equal(new long[] { 4, 32 }, lora.Layers[1].A.shape);
        Assert.Equal(new long[] { 64, 4 }, lora.Layers[1].B.shape);
    }

    [Fact]
    public void FreshAdapterLeavesOutputsUnchangedAndStateDictKeysIntact()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var keysBefore = model.state_dict().Keys.ToArray();
        using var before = model.forward(Ids);
        using var lora = LoraModel.Attach(model, Config());
        using var after = model.forward(Ids);
        Assert.Equal(keysBefore, model.state_dict().Keys.ToArray());
        Assert.True(allclose(before, after, rtol: 0, atol: 0));
        // A is kaiming-uniform with a = √5: U(±1/√in).
        var a = lora.Layers[0].A;
        Assert.True(a.abs().max().item<float>() <= 1 / Math.Sqrt(32) + 1e-6);
        Assert.True(a.abs().max().item<float>() > 0.5 / Math.Sqrt(32));
    }

    [Theory]
    [InlineData(4, false)]
    [InlineData(1, false)]
    [InlineData(4, true)]
    public void MergedForwardEqualsUnmergedAndUnmergeRestoresWeights(int r, bool rs)
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var original = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        using var baseLogits = model.forward(Ids);
        using var lora = LoraModel.Attach(model, Config(r, rs));
        Assert.Equal(rs ? 8 / Math.Sqrt(r) : 8.0 / r, lora.Layers[0].Scale, 12);
        RandomizeB(lora);
        using var unmerged = model.forward(Ids);
        Assert.False(allclose(unmerged, baseLogits, rtol: 0, atol: 1e-3), "a nonzero B must change the logits");

        lora.Merge();
        Assert.True(lora.Merged);
        using var merged = model.forward(Ids);
        Assert.True(allclose(merged, unmerged, rtol: 0, atol: 1e-5), $"max diff {(merged - unmerged).abs().max().item<float>()}");
        Assert.False(allclose(model.state_dict()["model.layers.0.mlp.down_proj.weight"], original["model.layers.0.mlp.down_proj.weight"], rtol: 0, atol: 1e-6));

        lora.Unmerge();
        foreach (var (key, w) in model.state_dict())
            Assert.True(allclose(w, original[key], rtol: 0, atol: 1e-6), $"{key} not restored");
        using var again = model.forward(Ids);
        Assert.True(allclose(again, unmerged, rtol: 0, atol: 1e-5));
    }

    [Fact]
    public void DisablingAdaptersGivesTheBaseModel()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var baseLogits = model.forward(Ids);
        using var lora = LoraModel.Attach(model, Config());
        RandomizeB(lora);
        lora.Enabled = false;
        using var disabled = model.forward(Ids);
        Assert.True(allclose(disabled, baseLogits, rtol: 0, atol: 0));
    }

    [Fact]
    public void OnlyAdapterParametersGetGradients()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var lora = LoraModel.Attach(model, Config());
        RandomizeB(lora);
        Assert.All(model.parameters(), p => Assert.False(p.requires_grad));
        Assert.Equal(2 * lora.Layers.Count, lora.parameters().Count());
        using var loss = model.forward(Ids).pow(2).mean();
        loss.backward();
        Assert.All(model.parameters(), p => Assert.True(p.grad is null));
        Assert.All(lora.parameters(), p => Assert.True(p.grad is not null && p.grad.abs().sum().item<float>() > 0));
    }

    [Fact]
    public void DisposeDetachesAdaptersAndUnfreezesBase()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var baseLogits = model.forward(Ids);
        var lora = LoraModel.Attach(model, Config());
        RandomizeB(lora);
        lora.Dispose();
        using var after = model.forward(Ids);
        Assert.True(allclose(after, baseLogits, rtol: 0, atol: 0));
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad));
    }

    [Fact]
    public void OneAdapterSetPerModel()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var first = LoraModel.Attach(model, Config());
        Assert.Throws<InvalidOperationException>(() => LoraModel.Attach(model, Config()));
        first.Dispose();
        using var second = LoraModel.Attach(model, Config(r: 2));
        Assert.Equal(2, second.Config.R);
    }

    [Fact]
    public void DropoutOnlyActsInTrainingMode()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var config = Config();
        config.LoraDropout = 0.5;
        using var lora = LoraModel.Attach(model, config);
        RandomizeB(lora);
        using var eval1 = model.forward(Ids);
        using var eval2 = model.forward(Ids);
        Assert.True(allclose(eval1, eval2, rtol: 0, atol: 0));
        model.train();
        using var train = model.forward(Ids);
        Assert.False(allclose(train, eval1, rtol: 0, atol: 1e-4));
    }

    [Fact]
    public void ConfigJsonUsesPeftFieldNames()
    {
        var config = Config(r: 1, rs: true, layers: [0, 1]);
        config.BaseModelNameOrPath = "tiny";
        var json = System.Text.Json.Nodes.JsonNode.Parse(config.ToJson())!;
        Assert.Equal("LORA", json["peft_type"]!.GetValue<string>());
        Assert.Equal("CAUSAL_LM", json["task_type"]!.GetValue<string>());
        Assert.Equal("none", json["bias"]!.GetValue<string>());
        Assert.Equal(1, json["r"]!.GetValue<int>());
        Assert.Equal(8, json["lora_alpha"]!.GetValue<double>());
        Assert.True(json["use_rslora"]!.GetValue<bool>());
        Assert.Equal("tiny", json["base_model_name_or_path"]!.GetValue<string>());
        Assert.Equal(new[] { "q_proj", "v_proj", "o_proj", "down_proj" }, json["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));
        var back = LoraConfig.FromJson(config.ToJson());
        Assert.Equal(new[] { 0, 1 }, back.LayersToTransform);
        Assert.Equal(config.Scaling, back.Scaling);
    }

    [Fact]
    public void PeftConfigVariantsParse()
    {
        // PEFT allows a single int for layers_to_transform and a regex string for target_modules.
        var config = LoraConfig.FromJson("""{"peft_type":"LORA","r":2,"lora_alpha":4,"target_modules":".*\\.(q|v)_proj","layers_to_transform":1,"unknown_field":[1,2]}""");
        using var model = TinyModels.Build(TinyModels.Llama());
        using var lora = LoraModel.Attach(model, config);
        Assert.Equal(new[] { "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj" }, lora.Layers.Select(l => l.ModulePath));
        Assert.Contains("unknown_field", config.ToJson());
    }

    [Theory]
    [InlineData("""{"peft_type":"LORA","r":0,"lora_alpha":4,"target_modules":["q_proj"]}""", "'r'")]
    [InlineData("""{"peft_type":"IA3","r":2,"lora_alpha":4,"target_modules":["q_proj"]}""", "'peft_type'")]
    [InlineData("""{"peft_type":"LORA","r":2,"lora_alpha":4,"target_modules":["qproj"]}""", "'target_modules'")]
    [InlineData("""{"peft_type":"LORA","r":2,"lora_alpha":4,"bias":"all","target_modules":["q_proj"]}""", "'bias'")]
    [InlineData("""{"peft_type":"LORA","r":"two","lora_alpha":4}""", "'r'")]
    public void BadConfigsNameTheField(string json, string field)
    {
        var e = Assert.Throws<InvalidDataException>(() => LoraConfig.FromJson(json, "adapter_config.json"));
        Assert.Contains("adapter_config.json", e.Message);
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void LayersOutsideTheModelAreRejected()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var e = Assert.Throws<ArgumentException>(() => LoraModel.Attach(model, Config(layers: [0, 5])));
        Assert.Contains("5", e.Message);
        using var logits = model.forward(Ids); // no hook left behind
    }

    static string TempDir() => Directory.CreateTempSubdirectory("lora-test-").FullName;

    [Fact]
    public void SaveLoadRoundTripUsesPeftLayout()
    {
        var dir = TempDir();
        try
        {
            using var model = TinyModels.Build(TinyModels.Llama());
            Tensor adapted;
            using (var lora = LoraModel.Attach(model, Config(r: 2, layers: [1])))
            {
                RandomizeB(lora);
                adapted = model.forward(Ids);
                lora.Save(dir);
            }
            Assert.True(File.Exists(Path.Combine(dir, "adapter_config.json")));
            using (var tensors = new DisposableDict(SafeTensors.Load(Path.Combine(dir, "adapter_model.safetensors"))))
            {
                var expected = new[] { "q_proj", "v_proj", "o_proj" }.Select(m => $"self_attn.{m}").Append("mlp.down_proj")
                    .SelectMany(m => new[] { $"base_model.model.model.layers.1.{m}.lora_A.weight", $"base_model.model.model.layers.1.{m}.lora_B.weight" });
                Assert.Equal(expected.Order(), tensors.Value.Keys.Order());
                Assert.Equal(new long[] { 2, 64 }, tensors.Value["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"].shape);  // [r, in]
                Assert.Equal(new long[] { 32, 2 }, tensors.Value["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"].shape);  // [out, r]
            }
            using var baseOnly = model.forward(Ids);
            Assert.False(allclose(baseOnly, adapted, rtol: 0, atol: 1e-3));
            using var loaded = LoraModel.Load(model, dir);
            Assert.Equal(2, loaded.Config.R);
            using var reloaded = model.forward(Ids);
            Assert.True(allclose(reloaded, adapted, rtol: 0, atol: 0));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void LoadingMismatchedWeightsNamesFileAndTensor()
    {
        var dir = TempDir();
        try
        {
            using var model = TinyModels.Build(TinyModels.Llama());
            using (var lora = LoraModel.Attach(model, Config(r: 2))) lora.Save(dir);
            // Same modules at another rank: every tensor has the wrong shape.
            Config(r: 3).Save(Path.Combine(dir, "adapter_config.json"));
            var e = Assert.Throws<InvalidDataException>(() => LoraModel.Load(model, dir));
            Assert.Contains("adapter_model.safetensors", e.Message);
            Assert.Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", e.Message);
            Assert.Contains("[2, 32]", e.Message);
            Assert.All(model.parameters(), p => Assert.True(p.requires_grad)); // the failed load detached itself
            // More target modules than the file has: a tensor is missing.
            Config(r: 2, targets: ["q_proj", "k_proj"]).Save(Path.Combine(dir, "adapter_config.json"));
            Assert.Contains("missing tensor 'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight'",
                Assert.Throws<InvalidDataException>(() => LoraModel.Load(model, dir)).Message);
            // Fewer: the file has tensors the config does not explain.
            Config(r: 2, targets: ["q_proj"]).Save(Path.Combine(dir, "adapter_config.json"));
            Assert.Contains("unexpected tensor", Assert.Throws<InvalidDataException>(() => LoraModel.Load(model, dir)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    sealed class DisposableDict(Dictionary<string, Tensor> value) : IDisposable
    {
        public Dictionary<string, Tensor> Value { get; } = value;
        public void Dispose()
        {
            foreach (var t in Value.Values) t.Dispose();
        }
    }
}
