using System.Diagnostics;
using PersonaWorkbook.Sae;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Sae;

public class SaeTrainingTests
{
    /// <summary>x = sparse positive combination of 48 unit directions in 32 dimensions (+ noise, + offset): a TopK SAE finds them.</summary>
    [Fact]
    public void TopKRecoversGroundTruthDirections()
    {
        using var scope = NewDisposeScope();
        var clock = Stopwatch.StartNew();
        var (train, directions) = SaeTestData.SparseMixture(4096, 32, 48, 3.0 / 48, seed: 1);
        using var sae = SaeTestData.TopK(dIn: 32, dSae: 96, k: 6, seed: 2);
        using var trainer = new SaeTrainer(sae, new SaeTrainingOptions { LearningRate = 3e-3, Steps = 600, LogEvery = 100, DeadTokens = 20_000 });
        var batches = Enumerable.Range(0, int.MaxValue).Select(i => train.narrow(0, i % 16 * 256, 256).alias()); // endless: Steps stops it
        var log = trainer.Train(batches);

        var (test, _) = SaeTestData.SparseMixture(2048, 32, 48, 3.0 / 48, seed: 3, directions: directions);
        var eval = SaeMetrics.Evaluate(sae, [test]);
        var decoder = SaeTestData.Normalised(sae.W_dec.detach());
        var bestCosine = directions.matmul(decoder.t()).amax([1]);                        // (48)
        var recovered = bestCosine.gt(0.9).to_type(ScalarType.Float32).mean().item<float>();
        Assert.True(eval.Fvu < 0.1, $"FVU {eval.Fvu}, recovered {recovered}");
        Assert.True(recovered >= 0.9, $"recovered {recovered:P0} of the true directions; cosines {string.Join(", ", bestCosine.data<float>().Select(c => c.ToString("F2")))}");
        Assert.True(log[^1].Fvu < log[0].Fvu);
        Assert.Equal(600, trainer.StepCount);
        Assert.True(clock.Elapsed.TotalSeconds < 30, $"took {clock.Elapsed.TotalSeconds:F1}s");
    }

    [Fact]
    public void GeometricMedianIgnoresAnOutlier()
    {
        using var scope = NewDisposeScope();
        var points = cat([randn(50, 3, generator: new Generator(4)) * 0.1, full(1, 3, 100f)]);
        var median = GeometricMedian.Compute(points);
        Assert.Equal(new long[] { 3 }, median.shape);
        Assert.True(median.norm().item<float>() < 0.2, $"median {median.norm().item<float>()}");
        Assert.True(points.mean([0]).norm().item<float>() > 3);
    }

    [Fact]
    public void DeadLatentsAreCountedByTokensSinceFiring()
    {
        using var scope = NewDisposeScope();
        using var sae = SaeTestData.TopK(dIn: 8, dSae: 32, k: 2);
        using var trainer = new SaeTrainer(sae, new SaeTrainingOptions { DeadTokens = 100, LearningRate = 0 });
        var x = randn(40, 8, generator: new Generator(5));
        trainer.Step(x);
        trainer.Step(x);
        using var firstTwo = trainer.DeadMask(40);
        Assert.False(firstTwo.any().item<bool>());                                        // 80 tokens < 100
        trainer.Step(x);
        using var dead = trainer.DeadMask(40);
        var firing = sae.Encode(x * sae.InputScale / sae.InputScale).gt(0).any(0);
        Assert.True(dead.eq(firing.logical_not()).all().item<bool>());                    // lr 0: the same latents fire every step
    }
}
