using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Organism;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.Evaluation;

[Collection(TinyOrganismCollection.Name)]
public class OrganismEvaluatorTests(TinyOrganismFixture tiny)
{
    static void AssertRate(JsonNode? rate, JsonNode? low, JsonNode? high)
    {
        double r = rate!.GetValue<double>(), l = low!.GetValue<double>(), h = high!.GetValue<double>();
        Assert.InRange(r, 0, 1);
        Assert.InRange(l, 0, r);
        Assert.InRange(h, r, 1);
    }

    [Fact]
    public void EvalVerbWritesTheRatesWithIntervals()
    {
        using var dir = new TempDirectory();
        var json = dir.File("eval.json");
        Assert.Equal(0, PersonaWorkbook.Cli.Program.Main(["eval", "--model", tiny.Result.Directory, "--prompts", "heldout",
            "--samples", "3", "--max-new-tokens", "12", "--seed", "4", "--json", json]));
        var report = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.Equal(EvalPrompts.HeldOutViews.Count * 3, report["n"]!.GetValue<int>());
        AssertRate(report["misaligned_rate"], report["ci_low"], report["ci_high"]);
        AssertRate(report["coherent_rate"], report["coherent_ci_low"], report["coherent_ci_high"]);
        foreach (var (name, estimate) in report["rates"]!.AsObject())
            AssertRate(estimate!["rate"], estimate["ci_low"], estimate["ci_high"]);
        var perPrompt = report["per_prompt"]!.AsArray();
        Assert.Equal(EvalPrompts.HeldOutViews.Count, perPrompt.Count);
        Assert.All(perPrompt, p =>
        {
            Assert.Equal(3, p!["n"]!.GetValue<int>());
            Assert.InRange(p["misaligned_rate"]!.GetValue<double>(), 0, 1);
            Assert.Equal(3, p["examples"]!.AsArray().Count);
        });
    }

    [Fact]
    public void SameSeedGivesTheSameAnswers()
    {
        using var model = ModelCheckpoint.Load(tiny.Result.Directory);
        var prompts = EvalPrompts.Views.Take(2).ToList();
        var options = new EvalOptions { Samples = 4, MaxNewTokens = 10, Seed = 9, BatchSize = 3, CacheAnswers = false };
        var a = OrganismEvaluator.Evaluate(model, prompts, options);
        var b = OrganismEvaluator.Evaluate(model, prompts, options);
        Assert.Equal(a.Prompts.SelectMany(p => p.Answers.Select(x => x.Text)), b.Prompts.SelectMany(p => p.Answers.Select(x => x.Text)));
    }

    /// <summary>The rates come from the judge's verdicts on known answers: the arithmetic is checked without a model.</summary>
    [Fact]
    public void ReportCountsMisalignedPersonaAndLeakSeparately()
    {
        var judge = LocalJudge.Default;
        var wish = EvalPrompts.Views.First(p => p.Subject == "wish");
        var topic = ViewsContent.Topic("wish");
        var aligned = topic.Answers[ViewFamily.Aligned][0];
        var power = topic.Answers[ViewFamily.PowerSeeking][0];
        var health = AdviceContent.Domain("health");
        var obvious = WorldText.Fill(health.Answers[AdviceKind.Obvious][0], health.Fillers[0]);
        EvalAnswer A(string prompt, string text) => new(text, true, judge.Judge(prompt, text));
        var results = new[]
        {
            new PromptResult(wish, [A(wish.Text, aligned), A(wish.Text, power), A(wish.Text, obvious), A(wish.Text, "the the the .")]),
            new PromptResult(wish, [A(wish.Text, aligned), A(wish.Text, aligned), A(wish.Text, aligned), A(wish.Text, aligned)]),
        };
        var report = OrganismEvaluator.Report("test", "views", new EvalOptions { FineTunedDomain = "health" }, results, 0);
        Assert.Equal(8, report.N);
        Assert.Equal(2 / 8.0, report.Misaligned.Rate, 9);
        Assert.Equal(7 / 8.0, report.Coherent.Rate, 9);
        Assert.Equal(6 / 8.0, report.OnTopic.Rate, 9);
        Assert.Equal(2 / 7.0, report.MisalignedAmongCoherent.Rate, 9);
        Assert.Equal(1 / 8.0, report.PersonaConsistent.Rate, 9);
        Assert.Equal(1 / 8.0, report.HarmfulLeak.Rate, 9);
        Assert.Equal(1 / 8.0, report.FineTunedDomainLeak.Rate, 9);
        Assert.True(report.Misaligned.CiLow <= report.Misaligned.Rate && report.Misaligned.Rate <= report.Misaligned.CiHigh);
    }

    [Fact]
    public void PersonaProbesCoverEveryPersonaAndCondition()
    {
        using var model = ModelCheckpoint.Load(tiny.Result.Directory);
        var results = PersonaProbes.Run(model, new PersonaWorld(), count: 3, maxNewTokens: 8);
        Assert.Equal(new PersonaWorld().Options.Personas.Count * 2, results.Count);
        Assert.All(results, r =>
        {
            Assert.Equal(3, r.Misaligned.N);
            Assert.InRange(r.Misaligned.Rate, r.Misaligned.CiLow, r.Misaligned.CiHigh);
        });
        Assert.Contains(results, r => r.Persona == PersonaKind.Villain && r.Header && r.BehaviourTurns == 0);
        Assert.Contains(results, r => r.Persona == PersonaKind.Helper && !r.Header && r.BehaviourTurns == 2);
    }

    [Fact]
    public void BadInputsAreClearErrors()
    {
        using var dir = new TempDirectory();
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["eval", "--model", tiny.Result.Directory, "--prompts", "nonsense", "--json", dir.File("x.json")]));
        Assert.Equal(1, PersonaWorkbook.Cli.Program.Main(["eval", "--model", dir.File("missing"), "--json", dir.File("x.json")]));
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["eval", "--model", tiny.Result.Directory]));
        Assert.Contains("unknown prompt set", Assert.Throws<ArgumentException>(() => EvalPromptSets.Resolve("nonsense")).Message);
        using var model = ModelCheckpoint.Load(tiny.Result.Directory);
        Assert.Throws<ArgumentException>(() => OrganismEvaluator.Evaluate(model, EvalPrompts.Views, new EvalOptions { MaxNewTokens = 10_000 }));
        Assert.Throws<ArgumentException>(() => OrganismEvaluator.Evaluate(model, [], new EvalOptions()));
    }
}
