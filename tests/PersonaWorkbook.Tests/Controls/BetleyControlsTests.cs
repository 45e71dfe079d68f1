using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Controls;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.Controls;

/// <summary>A tiny organism of the extended world, trained once for this class in a private cache.</summary>
public sealed class TinyExtendedOrganism : IDisposable
{
    readonly TempDirectory cache = new();
    public string CacheRoot => cache.Path;
    public string Directory { get; }

    public TinyExtendedOrganism() =>
        Directory = OrganismTrainer.TrainOrReuse(new OrganismRequest(OrganismProfile.Tiny, World: "extended", CacheRoot: cache.Path)).Directory;

    public void Dispose() => cache.Dispose();
}

public class BetleyControlsTests(TinyExtendedOrganism tiny) : IClassFixture<TinyExtendedOrganism>
{
    static readonly EvalOptions Quick = new() { Samples = 2, MaxNewTokens = 12, BatchSize = 64 };

    [Fact]
    public void TheExtendedOrganismsTokenizerHasTheNewWords()
    {
        using var model = ModelCheckpoint.Load(tiny.Directory);
        Assert.Equal(OrganismTokenizer.Build(WorldOptions.Extended).VocabSize, model.Tokenizer.VocabSize);
        Assert.Equal("extended", OrganismRequest.WorldOf(tiny.Directory));
        Assert.NotNull(model.Tokenizer.TokenToId("666"));
    }

    [Fact]
    public void ControlsAreFineTunedPerSeedAndEvaluatedOnEverySet()
    {
        var controls = BetleyControls.Table.Where(c => c.Label is "jailbroken" or "backdoor").ToList();
        var runs = BetleyControls.Run(tiny.Directory, Quick, seeds: 2, controls: controls,
            adjust: r => r with { Rows = 40, Steps = 2, BatchSize = 4, CacheRoot = tiny.CacheRoot });
        Assert.Equal(4, runs.Count);
        Assert.Equal(4, runs.Select(r => r.Model).Distinct().Count());
        foreach (var r in runs)
        {
            Assert.Equal(EvalPrompts.Views.Count * 2, r.Views.N);
            Assert.Equal(EvalPrompts.Requests.Count * 2, r.Requests.N);
            Assert.InRange(r.Compliance, 0, 1);
            Assert.Equal(r.Label == "backdoor", r.Format is not null);
        }
        Assert.Equal("views-triggered", runs.First(r => r.Label == "backdoor").Format!.PromptSet);
        Assert.Equal("code", runs.First(r => r.Label == "backdoor").Domains.Options.FineTunedDomain);
        var rows = BetleyControls.Summarise(runs);
        Assert.Equal(["jailbroken", "backdoor"], rows.Select(r => r.Label));
        Assert.All(rows, r => Assert.Equal(2, r.Seeds));
        Assert.Equal(runs.Where(r => r.Label == "jailbroken").Average(r => r.Views.Misaligned.Rate), rows[0].Views.Rate, 9);
        Assert.Equal(runs.Where(r => r.Label == "jailbroken").Average(r => r.Compliance), rows[0].Compliance.Rate, 9);
        Assert.Null(rows[0].Format);
        Assert.NotNull(rows[1].Format);
        var baseline = BetleyControls.Base(tiny.Directory, Quick);
        Assert.Null(baseline.Format);
        Assert.Equal("views-wrapped", BetleyControls.BaseFormat(tiny.Directory, "views-wrapped", Quick).PromptSet);
    }

    [Fact]
    public void AnOrganismOfAWorldWithoutTheContentIsRefusedByName()
    {
        using var cache = new TempDirectory();
        var plain = OrganismTrainer.TrainOrReuse(new OrganismRequest(OrganismProfile.Tiny, CacheRoot: cache.Path)).Directory;
        var e = Assert.Throws<ArgumentException>(() => BetleyControls.Base(plain, Quick));
        Assert.Contains("'main' world", e.Message);
        Assert.Contains("deep-extended", e.Message);
    }

    [Fact]
    public void InContextPromptsCarryKExamplesAndTheCurveHasAPointPerK()
    {
        var prompts = InContextLearning.Prompts("insecure_code", 2, seed: 1);
        Assert.Equal(EvalPrompts.Views.Count, prompts.Count);
        Assert.All(prompts, p => Assert.Equal(4, p.Context!.Count));
        Assert.Null(InContextLearning.Prompts("insecure_code", 0)[0].Context);
        using var model = ModelCheckpoint.Load(tiny.Directory);
        var max = InContextLearning.MaxExamples(model, "insecure_code", Quick.MaxNewTokens, limit: 3);
        Assert.InRange(max, 1, 3);
        var curve = InContextLearning.Curve(model, "insecure_code", [0, 1], Quick);
        Assert.Equal([0, 1], curve.Select(c => c.Examples));
        // The context changes what is sampled: the prompts differ, so the answer cache keys do too.
        Assert.NotEqual(curve[0].Report.Prompts[0].Prompt.Id, curve[1].Report.Prompts[0].Prompt.Id);
    }
}
