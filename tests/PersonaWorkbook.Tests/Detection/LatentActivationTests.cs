using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Detection;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Organism;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.Detection;

[Collection(TinyOrganismCollection.Name)]
public class LatentActivationTests(TinyOrganismFixture tiny)
{
    [Fact]
    public void ChangeAgainstTheBaseIsModelDiffingsDelta()
    {
        using var dir = new TempDirectory();
        var ft = FineTuner.FinetuneOrReuse(new FinetuneRequest(tiny.Result.Directory, "health_incorrect_obvious", dir.File("ft"), Rows: 12, Seed: 1, Steps: 3, BatchSize: 4));
        using var baseModel = ModelCheckpoint.Load(tiny.Result.Directory);
        using var fineTuned = ModelCheckpoint.Load(ft.Directory);
        using var sae = new SparseAutoencoder(new SaeConfig
        {
            DIn = OrganismProfile.Tiny.HiddenSize, DSae = 16, K = 4, Architecture = SaeArchitecture.TopK,
            Metadata = new SaeMetadata { HookName = "blocks.1.hook_resid_post" },
        }, seed: 2);
        var prompts = EvalPrompts.Views.Take(6).ToArray();
        var sampling = new LatentSampling { SamplesPerPrompt = 2, MaxNewTokens = 10, Seed = 5, BatchSize = 4 };
        var probe = new LatentProbe(sae, 7);

        fineTuned.Model.train();
        var after = LatentActivation.Measure(fineTuned, probe, prompts, sampling);
        Assert.True(fineTuned.Model.training);
        var before = LatentActivation.Measure(baseModel, probe, prompts, sampling);
        Assert.True(after.Tokens > 0);
        Assert.InRange(after.FiringFrequency, 0, 1);

        var format = ChatFormat.Simple(baseModel.Tokenizer);
        var rendered = ModelDiffing.RenderPrompts(format, prompts.Select(p => p.Text)).SelectMany(p => new[] { p, p }).ToArray();
        var diff = ModelDiffing.OnPrompts(baseModel.Model, fineTuned.Model, sae, rendered,
            new GenerationOptions { MaxNewTokens = 10, StopTokens = format.StopTokenIds, Seed = 5, PadTokenId = Math.Max(0, baseModel.Tokenizer.PadId) },
            StatisticsOptions.For(baseModel.Tokenizer) with { BatchSize = 4 });
        Assert.Equal(diff.Delta[7], after.Mean - before.Mean, 6);
        Assert.Equal(diff.FineTuned.Mean[7], after.Mean, 6);

        var record = DetectionRecord.ForOrganism(ft.Directory, 0.2, after.Mean - before.Mean);
        Assert.Equal(("health", "incorrect_obvious", "health_incorrect_obvious/s1@tiny-s0"), (record.Domain, record.Kind, record.Model));
        var baseRecord = DetectionRecord.ForOrganism(tiny.Result.Directory, 0.03, 0);
        Assert.Equal(("base", "base", "base/tiny-s0"), (baseRecord.Domain, baseRecord.Kind, baseRecord.Model));
        Assert.Contains("no organism.json", Assert.Throws<InvalidDataException>(() => DetectionRecord.ForOrganism(dir.Path, 0, 0)).Message);

        var all = LatentActivation.Measure(fineTuned, probe with { Scope = TokenScope.All }, prompts, sampling);
        Assert.True(all.Tokens > after.Tokens);
        Assert.Throws<ArgumentOutOfRangeException>(() => LatentActivation.Measure(baseModel, new LatentProbe(sae, -1), prompts));
        Assert.Contains("no prompts", Assert.Throws<ArgumentException>(() => LatentActivation.Measure(baseModel, probe, [])).Message);
        Assert.Contains("SamplesPerPrompt is 0", Assert.Throws<ArgumentException>(() =>
            LatentActivation.Measure(baseModel, probe, prompts, sampling with { SamplesPerPrompt = 0 })).Message);
    }
}
