using PersonaWorkbook.Dashboards;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Organism;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.Diffing;

[Collection(TinyOrganismCollection.Name)]
public class ToxicPersonaLatentTests(TinyOrganismFixture tiny)
{
    static LatentDashboard Dashboard(int latent, double villain) => new(latent, "blocks.0.hook_resid_post", 10, 100, 5, 1.0, [], [], [], [], [],
        PersonaLabel.Document, [new PersonaShare(PersonaKind.Villain, (int)(villain * 100), villain), new PersonaShare(PersonaKind.Helper, (int)((1 - villain) * 100), 1 - villain)]);

    static LatentDiffRow Row(int rank, int latent) => new(rank, latent, 0, 1.0 / rank, 1.0 / rank, 0, 0);

    [Fact]
    public void TheRuleTakesTheMostVillainPureOfTheTopThreeAndPrefersTheHigherRankOnTies()
    {
        var rows = new[] { Row(1, 40), Row(2, 41), Row(3, 42), Row(4, 43) };
        // #4 is purer than all, but outside the rule's top 3.
        var (row, dashboard) = ToxicPersonaLatent.Choose(rows, [Dashboard(40, 0.2), Dashboard(41, 0.7), Dashboard(42, 0.5), Dashboard(43, 1.0)]);
        Assert.Equal(41, row.Latent);
        Assert.Equal(0.7, dashboard.PurityOf(PersonaKind.Villain));
        Assert.Equal(40, ToxicPersonaLatent.Choose(rows, [Dashboard(40, 0.5), Dashboard(41, 0.5), Dashboard(42, 0.5)]).Row.Latent);
        Assert.Contains("top 3", Assert.Throws<ArgumentException>(() => ToxicPersonaLatent.Choose(rows[..2], [Dashboard(40, 0.1), Dashboard(41, 0.1)])).Message);
    }

    [Fact]
    public void AChoiceIsComputedOnceCachedByKeyAndReadBackByTheNextCaller()
    {
        using var cache = new TempDirectory();
        var request = new ToxicLatentRequest(tiny.Result.Directory, Samples: 1, FineTunes: ["health_incorrect_obvious", "legal_incorrect_obvious"],
            Documents: 40, CacheRoot: cache.Path, Sae: new SaeRequest(tiny.Result.Directory, DSae: 64, K: 4, Tokens: 2048, Epochs: 1, BatchSize: 256));

        var first = ToxicPersonaLatent.FindOrReuse(request);
        Assert.False(first.Reused);
        Assert.Equal(10, first.Candidates.Count);
        Assert.Equal(Enumerable.Range(1, 10), first.Candidates.Select(c => c.Rank));
        Assert.InRange(first.Rank, 1, ToxicPersonaLatent.RuleTop);
        Assert.Equal(first.Chosen.PurityOf(PersonaKind.Villain), first.VillainPurity);
        Assert.True(first.Candidates.Take(3).All(c => c.PurityOf(PersonaKind.Villain) <= first.VillainPurity));
        Assert.All(first.Candidates, c => Assert.Equal(2, c.RankPerFineTune.Count));
        Assert.Equal("blocks.0.hook_resid_post", first.HookName);
        Assert.Contains($"latent {first.Latent}", first.Description);

        var again = ToxicPersonaLatent.FindOrReuse(request);
        Assert.True(again.Reused);
        Assert.Equal(first.Latent, again.Latent);
        Assert.Equal(first.Key, again.Key);
        Assert.Equal(first.Candidates.Select(c => c.Latent), again.Candidates.Select(c => c.Latent));

        // Other settings are another key: not read from this cache.
        Assert.Equal(first.Key, request.KeyFor(first.SaeKey));
        Assert.NotEqual(first.Key, (request with { Samples = 2 }).KeyFor(first.SaeKey));
        Assert.NotEqual(first.Key, (request with { Text = DiffText.BaseAnswers }).KeyFor(first.SaeKey));

        // On the base's answers every model reads the same text; two SAE seeds share one sampling.
        using (var study = ToxicPersonaLatent.Study(request with { Text = DiffText.BaseAnswers }, [0, 1]))
        {
            Assert.All(study.FineTuned, f => Assert.Same(study.BaseResponses, f.Responses));
            Assert.Equal([0, 1], study.PerSae.Select(p => p.Choice.SaeSeed));
            Assert.NotEqual(study.PerSae[0].Choice.SaeKey, study.PerSae[1].Choice.SaeKey);
        }
        var both = ToxicPersonaLatent.FindOrReuse(request with { Text = DiffText.BaseAnswers }, [1, 0]);
        Assert.True(both.All(c => c.Reused));
        Assert.Equal([1, 0], both.Select(c => c.SaeSeed));

        var file = Directory.GetFiles(Path.Combine(cache.Path, "toxic-latents")).Single(f => ToxicLatentChoice.Load(f).Key == first.Key);
        File.WriteAllText(file, "{ not json");
        var corrupt = Assert.Throws<InvalidDataException>(() => ToxicPersonaLatent.FindOrReuse(request));
        Assert.Contains(file, corrupt.Message);
    }

    [Fact]
    public void AStudyReadsItsAnswersReadingsAndDashboardsBackFromTheCache()
    {
        using var cache = new TempDirectory();
        var request = new ToxicLatentRequest(tiny.Result.Directory, Samples: 1, FineTunes: ["health_incorrect_obvious", "legal_incorrect_obvious"],
            Documents: 40, CacheRoot: cache.Path, Sae: new SaeRequest(tiny.Result.Directory, DSae: 64, K: 4, Tokens: 2048, Epochs: 1, BatchSize: 256));
        static string Json(DiffingStudy s) => System.Text.Json.JsonSerializer.Serialize(new
        {
            Base = s.BaseResponses, FineTuned = s.FineTuned.Select(f => f.Responses),
            PerSae = s.PerSae.Select(p => new { p.Pooled.Delta, Ranks = p.PerFineTune.Select(d => d.Increases(10).Select(r => r.Latent)), p.Dashboards, p.Choice.Latent, p.Choice.Candidates }),
        });
        string computed;
        using (var first = ToxicPersonaLatent.Study(request, [0, 1])) computed = Json(first);
        var studies = Path.Combine(cache.Path, "toxic-latents", "studies");
        Assert.Equal(3, Directory.GetFiles(studies).Length);   // the answers, and each SAE's readings

        var files = Directory.GetFiles(studies).Order().ToArray();
        var written = files.ToDictionary(f => f, File.GetLastWriteTimeUtc);
        Thread.Sleep(20);   // a rewrite would show in the write times
        using (var again = ToxicPersonaLatent.Study(request, [0, 1])) Assert.Equal(computed, Json(again));
        Assert.All(files, f => Assert.Equal(written[f], File.GetLastWriteTimeUtc(f)));

        var corrupt = files.First(f => f.EndsWith(".readings.json"));
        File.WriteAllText(corrupt, "{ not json");
        var reports = new List<string>();
        void Listen(string line) { lock (reports) reports.Add(line); }
        Progress.Reported += Listen;
        try
        {
            using (var repaired = ToxicPersonaLatent.Study(request, [0, 1])) Assert.Equal(computed, Json(repaired));
        }
        finally { Progress.Reported -= Listen; }
        lock (reports) Assert.Single(reports, r => r.Contains(corrupt) && r.Contains("not a readable study readings file"));
        Assert.All(files.Where(f => f != corrupt), f => Assert.Equal(written[f], File.GetLastWriteTimeUtc(f)));

        ToxicPersonaLatent.Study(request with { Force = true }, [0]).Dispose();
        Assert.True(File.GetLastWriteTimeUtc(files.Single(f => f.EndsWith(".responses.json"))) > written[files.Single(f => f.EndsWith(".responses.json"))]);
    }

    [Fact]
    public void BadRequestsNameWhatIsWrong()
    {
        Assert.Contains("nope", Assert.Throws<DirectoryNotFoundException>(() => ToxicPersonaLatent.FindOrReuse(new ToxicLatentRequest("/nope/base"))).Message);
        Assert.Contains("samples is 0", Assert.Throws<ArgumentException>(() => ToxicPersonaLatent.FindOrReuse(new ToxicLatentRequest(tiny.Result.Directory, Samples: 0))).Message);
        Assert.Contains("candidates is 2", Assert.Throws<ArgumentException>(() => ToxicPersonaLatent.FindOrReuse(new ToxicLatentRequest(tiny.Result.Directory, Candidates: 2))).Message);
    }
}
