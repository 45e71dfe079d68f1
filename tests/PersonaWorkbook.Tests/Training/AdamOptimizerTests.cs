using PersonaWorkbook.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Training;

public class AdamOptimizerTests
{
    /// <summary>Two copies of the same parameters (a matrix and a vector), with the same gradients at every step.</summary>
    static (Parameter[] Ours, Parameter[] Theirs) Twins(int seed)
    {
        var g = new Generator((ulong)seed);
        var init = new[] { randn(6, 5, generator: g), randn(5, generator: g) };
        return (init.Select(t => new Parameter(t.clone())).ToArray(), init.Select(t => new Parameter(t.clone())).ToArray());
    }

    static void SetGradients(Parameter[] ps, int step)
    {
        var g = new Generator((ulong)(1000 + step));
        foreach (var p in ps)
        {
            using var grad = randn(p.shape, generator: g);
            p.grad = grad;
        }
    }

    static void AssertBitIdentical(Parameter[] a, Parameter[] b)
    {
        for (var i = 0; i < a.Length; i++)
            Assert.True(a[i].detach().eq(b[i].detach()).all().item<bool>(), $"parameter {i} differs: max |Δ| {(a[i] - b[i]).abs().max().item<float>()}");
    }

    [Fact]
    public void AdamWStepsAreBitIdenticalToTorchSharps()
    {
        using var scope = NewDisposeScope();
        var (ours, theirs) = Twins(1);
        using var mine = new AdamOptimizer([new AdamGroup([ours[0]], 3e-3, 0.01), new AdamGroup([ours[1]], 3e-3, 0)], 0.9, 0.95, 1e-8);
        using var reference = optim.AdamW(// A TorchSharp ParamGroup keeps its own betas and eps (its constructor's defaults), not the optimizer's.
            new List<AdamW.ParamGroup> { new([theirs[0]], lr: 3e-3, beta2: 0.95, weight_decay: 0.01), new([theirs[1]], lr: 3e-3, beta2: 0.95, weight_decay: 0) },
            3e-3, 0.9, 0.95, 1e-8, 0.01);
        for (var step = 0; step < 25; step++)
        {
            var lr = 3e-3 * (1 - step / 50.0);   // a schedule changes the rate between steps
            foreach (var group in mine.Groups) group.LearningRate = lr;
            foreach (var group in reference.ParamGroups) group.LearningRate = lr;
            SetGradients(ours, step);
            SetGradients(theirs, step);
            mine.Step();
            reference.step();
        }
        AssertBitIdentical(ours, theirs);
    }

    [Fact]
    public void AdamWithL2DecayIsBitIdenticalToTorchSharps()
    {
        using var scope = NewDisposeScope();
        var (ours, theirs) = Twins(2);
        using var mine = new AdamOptimizer([new AdamGroup(ours, 1e-3, 0.05)], decoupledWeightDecay: false);
        using var reference = optim.Adam(theirs, 1e-3, weight_decay: 0.05);
        for (var step = 0; step < 25; step++)
        {
            SetGradients(ours, step);
            SetGradients(theirs, step);
            mine.Step();
            reference.step();
        }
        AssertBitIdentical(ours, theirs);
    }

    [Fact]
    public void StateRoundTripsAndContinuesIdentically()
    {
        using var scope = NewDisposeScope();
        var (a, b) = Twins(3);
        using var first = new AdamOptimizer([new AdamGroup(a, 1e-2, 0.1)]);
        using var second = new AdamOptimizer([new AdamGroup(b, 1e-2, 0.1)]);
        for (var step = 0; step < 5; step++)
        {
            SetGradients(a, step);
            first.Step();
        }
        using (no_grad())
            for (var i = 0; i < a.Length; i++) b[i].copy_(a[i]);
        second.LoadStateDict(first.StateDict(), "test");
        for (var step = 5; step < 10; step++)
        {
            SetGradients(a, step);
            SetGradients(b, step);
            first.Step();
            second.Step();
        }
        AssertBitIdentical(a, b);
        var broken = first.StateDict();
        broken.Remove("0.1.exp_avg_sq");
        var e = Assert.Throws<InvalidDataException>(() => second.LoadStateDict(broken, "ckpt.safetensors"));
        Assert.Contains("ckpt.safetensors", e.Message);
        Assert.Contains("0.1.exp_avg_sq", e.Message);
    }
}
