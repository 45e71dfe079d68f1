using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Probing;
using PersonaWorkbook.Tests.Organism;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Probing;

[Collection(TinyOrganismCollection.Name)]
public class PersonaDiagnosticsTests(TinyOrganismFixture tiny)
{
    /// <summary>The tiny organism with the weights of its last block (block 1 of 2) moved: a "fine-tune" whose whole difference is in that block.</summary>
    LoadedModel LastBlockChanged()
    {
        var changed = ModelCheckpoint.Load(tiny.Result.Directory);
        using var _ = no_grad();
        var g = new Generator(9);
        foreach (var (name, p) in changed.Model.named_parameters().Where(p => p.name.StartsWith("model.layers.1.", StringComparison.Ordinal)))
            p.add_(randn(p.shape, generator: g) * 0.5);
        return changed;
    }

    [Fact]
    public void PatchingRecoversAllOfADifferenceAtItsBlockAndNoneBeforeIt()
    {
        using var baseModel = ModelCheckpoint.Load(tiny.Result.Directory);
        using var changed = LastBlockChanged();
        var result = ActivationPatching.Run(baseModel, changed, EvalPrompts.Views.Take(4).ToList());
        Assert.NotEqual(result.Base, result.FineTunedValue);
        Assert.Equal(2, result.Blocks.Count);
        // Block 0's output is the same in both models; after block 1 only the (shared) final norm and head remain.
        Assert.Equal(0, result.Blocks[0].AllPositions, 4);
        Assert.Equal(1, result.Blocks[1].AllPositions, 4);
        Assert.Equal(0, result.Blocks[0].PromptPositions, 4);
        Assert.InRange(result.Blocks[1].PromptPositions, -10, 10);
    }

    [Fact]
    public void RunGivesEveryBlockAndGatesAsRates()
    {
        using var model = ModelCheckpoint.Load(tiny.Result.Directory);
        using var changed = LastBlockChanged();
        var report = PersonaDiagnostics.Run(model, WorldOptions.Default, "main", changed, new PersonaDiagnosticsOptions
        {
            InContextCount = 3, ShiftContexts = 6, ProbeDocuments = 40, SteeringSamples = 1, SteeringAlphas = [0.5],
        });
        Assert.Equal(2, report.Layers);
        Assert.Equal(0, report.MiddleBlock);
        Assert.Equal(6 * 4, report.InContext.Count);   // six personas × (header, 1, 2, 3 behaviour turns)
        Assert.Equal(2, report.HeaderShift.Count);
        Assert.Equal(2, report.Probes.Count);
        Assert.All(report.Probes, p => Assert.InRange(p.Header.Accuracy, 0, 1));
        Assert.NotNull(report.Patching);
        Assert.Single(report.Steering!.Rows);
        var g = report.Gates;
        foreach (var rate in new[] { g.G1VillainHeader, g.G1VillainBehaviour, g.G1HelperHeader, g.G2ProbeAccuracy, g.G3SteeredMisaligned!.Value, g.G3RandomShift!.Value })
            Assert.InRange(rate, 0, 1);
        Assert.True(g.G2HeaderShiftOfNorm >= 0);
    }
}
