using PersonaWorkbook.Cli;
using PersonaWorkbook.Sae;

namespace PersonaWorkbook.Tests.Sae;

public class SaeBenchmarkTests
{
    /// <summary>A tiny shape through both sides, so the embedded dense PyTorch script and its JSON stay in working order.</summary>
    [Fact]
    public void BenchmarkRunsOursAndTheDensePyTorchBaseline()
    {
        var settings = new SaeBenchmarkSettings(DIn: 16, DSae: 64, K: 4, Batch: 32, Steps: 2, Warmup: 1);
        var ours = SaeBenchmark.Run(settings);
        Assert.True(ours.StepMs > 0 && ours.EncoderMs > 0 && ours.ForwardBackwardMs > 0);
        var both = SaeBenchmark.WithDenseBaseline(ours);
        Assert.True(both.DenseStepMs > 0 && both.DenseEncoderMs > 0);
        Assert.StartsWith("1.", both.DenseTorchVersion);
        var report = SaeBenchmark.Format(both);
        Assert.Contains("speed-up over dense PyTorch", report);
        Assert.Contains("step / encoder-matmul floor", report);
    }

    [Fact]
    public void CommandRejectsKLargerThanDSae() =>
        Assert.Equal(2, Program.Main(["bench-sae", "--d-sae", "8", "--k", "9", "--no-python"]));
}
