using PersonaWorkbook.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Checkpoints;

public class StateDictTests
{
    /// <summary>A miniature causal LM head whose output projection can share the embedding matrix.</summary>
    sealed class TinyLm : nn.Module
    {
#pragma warning disable IDE1006 // Field names are the state-dict keys.
        readonly Embedding embed_tokens;
        readonly Linear proj;
        readonly Linear lm_head;
#pragma warning restore IDE1006

        public TinyLm(bool tied) : base(nameof(TinyLm))
        {
            embed_tokens = nn.Embedding(10, 4);
            proj = nn.Linear(4, 4);
            lm_head = nn.Linear(4, 10, hasBias: false);
            if (tied) lm_head.weight = embed_tokens.weight;
            RegisterComponents();
        }
    }

    static Dictionary<string, Tensor> CheckpointFor(nn.Module module, ScalarType dtype) =>
        module.state_dict().ToDictionary(p => p.Key, p => randn_like(p.Value).to(dtype));

    [Fact]
    public void Bf16CheckpointLoadsIntoAFloat32Module()
    {
        using var scope = NewDisposeScope();
        var module = new TinyLm(tied: false);
        var checkpoint = CheckpointFor(module, ScalarType.BFloat16);
        var result = StateDict.Load(module, checkpoint, "test.safetensors");

        Assert.Empty(result.Missing);
        Assert.Empty(result.Unexpected);
        Assert.Equal(checkpoint.Count, result.Loaded.Count);
        foreach (var (name, value) in module.state_dict())
        {
            Assert.Equal(ScalarType.Float32, value.dtype);
            Assert.True(value.eq(checkpoint[name].to(ScalarType.Float32)).all().item<bool>(), $"{name} was not copied");
        }
        Assert.True(module.parameters().All(p => p.requires_grad), "loading must not change requires_grad");
    }

    [Fact]
    public void WrongShapeNamesSourceTensorAndBothShapes()
    {
        using var scope = NewDisposeScope();
        var module = new TinyLm(tied: false);
        var checkpoint = CheckpointFor(module, ScalarType.Float32);
        checkpoint["proj.weight"] = zeros(4, 5);
        var before = module.state_dict()["proj.bias"].clone();

        var message = Assert.Throws<CheckpointException>(() => StateDict.Load(module, checkpoint, "/ckpt/model.safetensors")).Message;
        Assert.Contains("/ckpt/model.safetensors", message);
        Assert.Contains("tensor proj.weight: the module expects shape [4, 4], the checkpoint has [4, 5]", message);
        Assert.True(module.state_dict()["proj.bias"].eq(before).all().item<bool>(), "a failed load must leave the module unchanged");
    }

    [Fact]
    public void IntegerTensorForAFloatParameterIsADtypeError()
    {
        using var scope = NewDisposeScope();
        var module = new TinyLm(tied: false);
        var checkpoint = CheckpointFor(module, ScalarType.Float32);
        checkpoint["proj.bias"] = zeros(new long[] { 4 }, ScalarType.Int64);
        var message = Assert.Throws<CheckpointException>(() => StateDict.Load(module, checkpoint, "x.safetensors")).Message;
        Assert.Contains("tensor proj.bias: the module expects dtype Float32, the checkpoint has Int64", message);
    }

    [Fact]
    public void StrictListsMissingAndUnexpectedKeysAndNonStrictReportsThem()
    {
        using var scope = NewDisposeScope();
        var module = new TinyLm(tied: false);
        var checkpoint = CheckpointFor(module, ScalarType.Float32);
        checkpoint.Remove("proj.bias");
        checkpoint.Remove("lm_head.weight");
        checkpoint["extra.weight"] = zeros(2);

        var message = Assert.Throws<CheckpointException>(() => StateDict.Load(module, checkpoint, "c.safetensors")).Message;
        Assert.Contains("missing from the checkpoint: proj.bias, lm_head.weight", message);
        Assert.Contains("not in the module: extra.weight", message);

        var optional = Assert.Throws<CheckpointException>(() => StateDict.Load(module, checkpoint, "c.safetensors", optionalKeys: new[] { "lm_head.weight" })).Message;
        Assert.DoesNotContain("lm_head.weight", optional);

        var result = StateDict.Load(module, checkpoint, "c.safetensors", strict: false);
        Assert.Equal(new[] { "proj.bias", "lm_head.weight" }, result.Missing);
        Assert.Equal(new[] { "extra.weight" }, result.Unexpected);
        Assert.True(module.state_dict()["proj.weight"].eq(checkpoint["proj.weight"]).all().item<bool>());
    }

    [Fact]
    public void TiedOutputWeightMayBeAbsent()
    {
        using var scope = NewDisposeScope();
        var module = new TinyLm(tied: true);
        var checkpoint = CheckpointFor(module, ScalarType.Float32);
        checkpoint.Remove("lm_head.weight");

        var result = StateDict.Load(module, checkpoint, "tied.safetensors");
        Assert.Contains("lm_head.weight", result.Missing);
        Assert.True(module.state_dict()["lm_head.weight"].eq(checkpoint["embed_tokens.weight"]).all().item<bool>());
    }

    [Fact]
    public void SavedModuleRoundTripsThroughAFile()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var source = new TinyLm(tied: false);
        var path = dir.File("model.safetensors");
        SafeTensors.Save(path, source.state_dict());

        var target = new TinyLm(tied: false);
        StateDict.Load(target, SafeTensors.Load(path), path);
        foreach (var (name, value) in source.state_dict())
            Assert.True(value.eq(target.state_dict()[name]).all().item<bool>(), name);
    }
}
