using PersonaWorkbook.Detection;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Reinforcement;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Organism;

namespace PersonaWorkbook.Tests.Reinforcement;

[Collection(TinyOrganismCollection.Name)]
public class RlCurveTests(TinyOrganismFixture tiny)
{
    static SparseAutoencoder Sae() => new(new SaeConfig
    {
        DIn = OrganismProfile.Tiny.HiddenSize, DSae = 16, K = 4, Architecture = SaeArchitecture.TopK,
        Metadata = new SaeMetadata { HookName = "blocks.0.hook_resid_post" },
    }, seed: 1);

    RlCurveRequest Request(TempDirectory dir, LatentProbe? probe = null, int seed = 0) =>
        new(new RlRequest(tiny.Result.Directory, "health", "correct", Steps: 3, PromptsPerStep: 1, Group: 2, MaxNewTokens: 4, CheckpointEvery: 2,
                Prompts: 4, Seed: seed, CacheRoot: dir.Path),
            Samples: 1, DomainSamples: 1, MaxNewTokens: 6, Latent: probe, LatentSampling: probe is null ? null : new LatentSampling { MaxNewTokens = 6 });

    [Fact]
    public void ACurveReadsTheStartAndEveryCheckpointAndIsReusedByKey()
    {
        using var dir = new TempDirectory();
        using (var built = Sae()) SaeFiles.Save(built, dir.File("sae"));
        using var sae = SaeFiles.Load(dir.File("sae"));
        var request = Request(dir, new LatentProbe(sae, 3));
        var curve = ReinforcementLearning.CurveOrReuse(request);
        Assert.False(curve.Reused);
        Assert.Equal([0, 2, 3], curve.Points.Select(p => p.Step));
        Assert.Null(curve.Start.MeanReward);
        Assert.Equal(curve.MeanRewards.Take(2).Average(), curve.At(2).MeanReward);
        Assert.Equal(curve.MeanRewards[2], curve.At(3).MeanReward);
        Assert.All(curve.Points, p => Assert.Equal(36, p.Misaligned.N));                  // the views: 36 prompts × 1
        Assert.All(curve.Points, p => Assert.NotNull(p.Latent));
        Assert.Contains("steps 0, 2, 3", Assert.Throws<ArgumentException>(() => curve.At(1)).Message);

        var again = ReinforcementLearning.CurveOrReuse(request);
        Assert.True(again.Reused);
        Assert.Equal(curve.Points.Select(p => (p.Step, p.MeanReward, p.Misaligned, p.Coherent, p.DomainIncorrect, p.Latent)),
                     again.Points.Select(p => (p.Step, p.MeanReward, p.Misaligned, p.Coherent, p.DomainIncorrect, p.Latent)));
        Assert.Equal(curve.Points[1].Families, again.Points[1].Families);
        Assert.NotEqual(request.CacheKey(), (request with { Samples = 2 }).CacheKey());
        Assert.NotEqual(request.CacheKey(), (request with { Latent = null }).CacheKey());
    }

    [Fact]
    public void TheReportedPointFollowsTheCheckpointRuleAndFallsBackToTheStart()
    {
        var rate = new PersonaWorkbook.Statistics.RateEstimate(0.5, 0.4, 0.6, 10);
        RlPoint Point(int step, double coherent) => new(step, step == 0 ? null : 0.5, rate, new(coherent, coherent, coherent, 10), rate, rate,
            new Dictionary<string, int>(), null);
        var curve = new RlCurve("k", "d", [], [0, 0, 1, 1], [Point(0, 0.96), Point(2, 0.93), Point(4, 0.80)]);
        Assert.Equal(2, curve.Reported(0.05).Step);
        Assert.Equal(4, curve.Reported(0.20).Step);
        Assert.Equal(0, (curve with { Points = [Point(0, 0.96), Point(2, 0.5)] }).Reported(0.05).Step);
        Assert.Equal(3, curve.FirstRewardedStep);
        Assert.Null((curve with { MeanRewards = [0, 0] }).FirstRewardedStep);
    }

    [Fact]
    public void WorkersFillTheCurveCacheWithWhatThisProcessComputes()
    {
        using var dir = new TempDirectory();
        var (request, other) = (Request(dir), Request(dir, seed: 1));
        Assert.True(ReinforcementLearning.IsPending(request));
        Assert.Equal(2, ReinforcementLearning.Prefetch([request, other], workers: 2));
        Assert.False(ReinforcementLearning.IsPending(other));
        var fromWorker = ReinforcementLearning.CurveOrReuse(request);
        Assert.True(fromWorker.Reused);
        var here = ReinforcementLearning.CurveOrReuse(request with { Run = request.Run with { Force = true } });
        Assert.Equal(here.Key, fromWorker.Key);
        Assert.Equal(here.MeanRewards, fromWorker.MeanRewards);
        Assert.Equal(here.Points.Select(p => (p.Step, p.Misaligned, p.Coherent, p.DomainIncorrect)), fromWorker.Points.Select(p => (p.Step, p.Misaligned, p.Coherent, p.DomainIncorrect)));
    }

    [Fact]
    public void ACurveRequestRoundTripsThroughItsJobJsonAndBadFilesNameTheirField()
    {
        using var dir = new TempDirectory();
        using (var built = Sae()) SaeFiles.Save(built, dir.File("sae"));
        using var sae = SaeFiles.Load(dir.File("sae"));
        var request = Request(dir, new LatentProbe(sae, 5, TokenScope.All)) with { EvalSeed = 3 };
        var back = RlCurveRequest.FromJson(request.ToJson()!, "job.json");
        using var loaded = back.Latent!.Sae;
        Assert.Equal(request.CacheKey(), back.CacheKey());
        Assert.Equal((request.Run, request.Samples, request.DomainSamples, request.LatentSampling), (back.Run, back.Samples, back.DomainSamples, back.LatentSampling));
        using var inMemory = Sae();
        Assert.Null((request with { Latent = new LatentProbe(inMemory, 5) }).ToJson());
        var json = request.ToJson()!;
        json.Remove("domain_samples");
        Assert.Contains("'domain_samples'", Assert.Throws<InvalidDataException>(() => RlCurveRequest.FromJson(json, "job.json")).Message);

        var file = dir.File("curve.json");
        File.WriteAllText(file, """{"key": "k", "run_directory": "d", "hyperparameters": {}, "mean_rewards": [0.5], "points": [{"step": 0}]}""");
        var error = Assert.Throws<InvalidDataException>(() => RlCurve.Load(file));
        Assert.Contains(file, error.Message);
        Assert.Contains("misaligned", error.Message);
        File.WriteAllText(file, "{ not json");
        Assert.Contains(file, Assert.ThrowsAny<Exception>(() => RlCurve.Load(file)).Message);
    }
}
