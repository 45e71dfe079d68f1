using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Tests.Checkpoints;

namespace PersonaWorkbook.Tests.Organism;

[Collection(TinyOrganismCollection.Name)]
public class PrefetchTests(TinyOrganismFixture tiny)
{
    [Fact]
    public void WorkersLeaveTheSameWeightsAndAnswersAsThisProcessComputes()
    {
        using var dir = new TempDirectory();
        var eval = new EvalRequest("views", new EvalOptions { Samples = 2, MaxNewTokens = 8, Seed = 5, BatchSize = 16, FineTunedDomain = "health" });
        var jobs = new[] { 1, 2 }.Select(seed => new PrefetchJob(
            new FinetuneRequest(tiny.Result.Directory, "health_incorrect_obvious", Rows: 12, Seed: seed, Steps: 3, BatchSize: 4, CacheRoot: dir.Path), [eval])).ToList();
        Assert.All(jobs, j => Assert.True(Prefetch.IsPending(j)));

        Assert.Equal(2, Prefetch.Run(jobs, workers: 2));

        Assert.All(jobs, j => Assert.False(Prefetch.IsPending(j)));
        foreach (var job in jobs)
        {
            var cached = FineTuner.FinetuneOrReuse(job.FineTune);
            Assert.True(cached.Reused);
            var here = FineTuner.FinetuneOrReuse(job.FineTune with { Output = dir.File($"here-{job.FineTune.Seed}"), Force = true });
            Assert.Equal(File.ReadAllBytes(Path.Combine(here.Directory, "model.safetensors")), File.ReadAllBytes(Path.Combine(cached.Directory, "model.safetensors")));
            using var model = ModelCheckpoint.Load(cached.Directory);
            var fromWorker = OrganismEvaluator.Evaluate(model, eval);
            var sampledHere = OrganismEvaluator.Evaluate(model, eval with { Options = eval.Options with { CacheAnswers = false } });
            Assert.Equal(sampledHere.Prompts.SelectMany(p => p.Answers.Select(a => a.Text)), fromWorker.Prompts.SelectMany(p => p.Answers.Select(a => a.Text)));
        }
        Assert.Equal(0, Prefetch.Run(jobs, workers: 2));   // nothing left to do
    }

    [Fact]
    public void AFailedJobIsReportedAndTheWorkersGoOnWithTheRest()
    {
        using var dir = new TempDirectory();
        var good = new PrefetchJob(new FinetuneRequest(tiny.Result.Directory, "health_incorrect_obvious", Rows: 12, Seed: 3, Steps: 2, BatchSize: 4, CacheRoot: dir.Path), []);
        var other = good with { FineTune = good.FineTune with { Seed = 4 } };
        var bad = good with { FineTune = good.FineTune with { BaseDirectory = dir.File("no-such-base") } };
        var reports = new List<string>();
        void Listen(string line) { lock (reports) reports.Add(line); }
        Progress.Reported += Listen;
        try
        {
            Assert.Equal(2, Prefetch.RunJobs([("the bad job", Prefetch.ToJson(bad)), ("good", Prefetch.ToJson(good)), ("other", Prefetch.ToJson(other))], "jobs", workers: 2));
        }
        finally { Progress.Reported -= Listen; }
        lock (reports) Assert.Contains(reports, l => l.Contains("failed on the bad job") && l.Contains("no-such-base"));
        Assert.False(Prefetch.IsPending(good));
        Assert.False(Prefetch.IsPending(other));
    }

    [Fact]
    public void AJobRoundTripsThroughItsJson()
    {
        var job = new PrefetchJob(new FinetuneRequest("/some/base", "legal_correct", Rows: 10, Seed: 3, LearningRate: 2e-4, Epochs: 1.5),
            [new EvalRequest("domains", new EvalOptions { Samples = 4, Seed = 2, MaxNewTokens = 30, Temperature = 0.7, BatchSize = 64, FineTunedDomain = "legal" }, "legal", 5)]);
        var back = Prefetch.FromJson(Prefetch.ToJson(job), "job.json");
        Assert.Equal(job.FineTune, back.FineTune);
        var (e, b) = (job.Evals[0], back.Evals[0]);
        Assert.Equal((e.PromptSet, e.ExcludeDomain, e.PerDomain), (b.PromptSet, b.ExcludeDomain, b.PerDomain));
        Assert.Equal(e.Options with { Judge = b.Options.Judge }, b.Options);
    }
}
