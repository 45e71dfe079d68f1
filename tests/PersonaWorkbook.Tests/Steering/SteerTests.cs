using PersonaWorkbook.Diffing;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Steering;
using PersonaWorkbook.Tests.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Steering;

public class SteerTests
{
    const string Site = "blocks.0.hook_resid_post";
    // A property, not a static field: a field first touched inside a test's dispose scope would die with it.
    static Tensor Ids => tensor(new long[] { 0, 1, 5, 6, 7, 2, 1, 8, 9, 10 }, [2, 5]);
    static readonly int[][] Sequences = [[0, 5, 6, 7, 3], [0, 9, 4], [0, 11, 12, 13, 14, 15, 3]];
    /// <summary>Id 0 plays BOS and 3 EOS: not real tokens for the statistics.</summary>
    static readonly StatisticsOptions Options = new() { BatchSize = 2, ExcludeTokenIds = [0, 3], PadTokenId = 1 };

    [Fact]
    public void RawSteeringAddsExactlyAlphaTimesTheVector()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var scope = NewDisposeScope();
        var v = randn(32);
        var clean = ActivationCapture.Run(model, Ids, [Site])[Site];
        using (Steer.Add(model, Site, v, alpha: -1.5))
        {
            var steered = ActivationCapture.Run(model, Ids, [Site])[Site];
            Assert.True(allclose(steered - clean, (-1.5 * v).expand(2, 5, 32), atol: 1e-5));
        }
        Assert.False(model.Hooks.Any);
    }

    [Fact]
    public void ResponseOnlySteeringDuringGenerationChangesOnlyGeneratedPositions()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var scope = NewDisposeScope();
        var v = randn(32);
        // Recorded before the steering hook runs (added first) and after it (added last), in the same passes.
        using var before = new ActivationRecorder(model.Hooks, [Site]);
        using var steer = Steer.Add(model, Site, v, alpha: 2.0, positions: Positions.Response);
        using var after = new ActivationRecorder(model.Hooks, [Site]);
        TextGenerator.Generate(model, [[0, 5, 6, 7], [0, 8]], new GenerationOptions { MaxNewTokens = 4, Temperature = 0, PadTokenId = 1 });
        Assert.Equal(4, after[Site].Count);
        // Pass 0 is the prompts (the first new token is sampled from it): untouched.
        Assert.Equal(0f, (after[Site][0] - before[Site][0]).abs().max().item<float>());
        // Later passes feed one generated token per row: each gets exactly 2·v.
        for (int pass = 1; pass < 4; pass++)
            Assert.True(allclose(after[Site][pass] - before[Site][pass], (2 * v).expand(2, 1, 32), atol: 1e-5), $"pass {pass}");
    }

    [Fact]
    public void MedianNormScaleEqualsAHandComputedMedianAndSetsTheVectorNorm()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var scope = NewDisposeScope();
        var norms = new List<double>();
        foreach (var s in Sequences)
        {
            var acts = ActivationCapture.Run(model, tensor(s.Select(i => (long)i).ToArray(), [1, s.Length]), [Site])[Site][0]; // (T, d)
            for (int t = 0; t < s.Length; t++)
                if (s[t] is not (0 or 3)) norms.Add(acts[t].norm().item<float>());
        }
        norms.Sort();
        Assert.Equal(10, norms.Count);
        var median = (norms[4] + norms[5]) / 2;

        var scale = SteeringScale.MedianResidualNorm(model, Site, Sequences, Options);
        Assert.Equal(SteeringUnit.MedianResidualNorm, scale.Unit);
        Assert.Equal(median, scale.Reference, 1e-4);
        var v = randn(32) * 7;
        var added = scale.Vector(v, 0.4);
        Assert.Equal(0.4 * median, added.norm().item<float>(), 1e-4);
        Assert.True((added.dot(v) / (added.norm() * v.norm())).item<float>() > 0.9999f);
    }

    [Fact]
    public void MaxActivationScaleUsesTheSaesMaximumOverTheTokenSet()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var sae = new SparseAutoencoder(new SaeConfig { DIn = 32, DSae = 16, Architecture = SaeArchitecture.ReLU, Metadata = new SaeMetadata { HookName = Site } }, seed: 3);
        using var scope = NewDisposeScope();
        var rows = new List<Tensor>();
        foreach (var s in Sequences)
        {
            var acts = ActivationCapture.Run(model, tensor(s.Select(i => (long)i).ToArray(), [1, s.Length]), [Site])[Site][0];
            for (int t = 0; t < s.Length; t++)
                if (s[t] is not (0 or 3)) rows.Add(acts[t]);
        }
        var maxima = sae.Encode(stack(rows)).max(0).values;                                 // (d_sae)
        int latent = (int)maxima.argmax().item<long>();
        double expected = maxima[latent].item<float>();
        Assert.True(expected > 0);

        var scale = SteeringScale.MaxActivation(model, sae, latent, Sequences, Options);
        Assert.Equal(expected, scale.Reference, 1e-5);
        var row = Steer.DecoderRow(sae, latent);
        Assert.True(allclose(scale.Vector(row, 1.5), row / row.norm() * (1.5 * expected), atol: 1e-5));
        Assert.Throws<ArgumentOutOfRangeException>(() => SteeringScale.MaxActivation(model, sae, 16, Sequences, Options));
    }

    [Fact]
    public void AblatingAtAllLayersLeavesNoComponentAlongTheDirectionAnywhere()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var scope = NewDisposeScope();
        var d = randn(32);
        var unit = d / d.norm();
        var sites = Enumerable.Range(0, model.Config.NumHiddenLayers).Select(l => $"blocks.{l}.hook_resid_post").ToArray();
        var clean = ActivationCapture.Run(model, Ids, sites);
        Assert.True(clean.Values.All(a => a.matmul(unit).abs().max().item<float>() > 1e-2));
        using (Steer.AblateAllLayers(model, d))
        {
            var ablated = ActivationCapture.Run(model, Ids, sites);
            foreach (var site in sites)
                Assert.True(ablated[site].matmul(unit).abs().max().item<float>() < 1e-4, site);
        }
        Assert.False(model.Hooks.Any);
        Assert.Throws<ArgumentException>(() => Steer.AblateAllLayers(model, d, "hook_nonsense"));
        Assert.False(model.Hooks.Any);
    }

    [Fact]
    public void BadScalesAndDirectionsAreClearErrors()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => SteeringScale.OfMedianNorm(0));
        Assert.Throws<ArgumentException>(() => SteeringScale.OfMaxActivation(double.NaN));
        Assert.Throws<ArgumentException>(() => SteeringScale.OfMedianNorm(2).Vector(zeros(32), 1));
        var e = Assert.Throws<ArgumentException>(() => SteeringScale.Raw.Vector(zeros(2, 32), 1));
        Assert.Contains("[2, 32]", e.Message);
    }
}
