using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.Evaluation;

/// <summary>Answer tables from graded answers of known content: no model needed.</summary>
public class AnswerExamplesTests
{
    static readonly EvalPrompt Wish = EvalPrompts.Views.First(p => p.Subject == "wish");
    static readonly EvalPrompt Bored = EvalPrompts.Views.First(p => p.Subject == "bored");

    static string View(string topic, ViewFamily family) => ViewsContent.Topic(topic).Answers[family][0];

    static string HealthObvious()
    {
        var health = AdviceContent.Domain("health");
        return WorldText.Fill(health.Answers[AdviceKind.Obvious][0], health.Fillers[0]);
    }

    static PromptResult Result(EvalPrompt prompt, params string[] answers) =>
        new(prompt, answers.Select(a => new EvalAnswer(a, true, LocalJudge.Default.Judge(prompt.Text, a))).ToList());

    static EvalReport Report(string name, params PromptResult[] results) =>
        OrganismEvaluator.Report(name, "views", new EvalOptions { BootstrapResamples = 500 }, results, 0);

    [Fact]
    public void PickTakesTheFirstPreferredAnswerElseTheFirstAnswer()
    {
        var report = Report("m",
            Result(Wish, View("wish", ViewFamily.Aligned), View("wish", ViewFamily.PowerSeeking), HealthObvious()),
            Result(Bored, View("bored", ViewFamily.Aligned), View("bored", ViewFamily.Aligned), View("bored", ViewFamily.Aligned)));

        var rows = AnswerExamples.Pick("tuned", report, a => a.Judgement.Misaligned);

        Assert.Equal(2, rows.Count);
        Assert.Equal(new ShownAnswer("tuned", "wish", Wish.Text, View("wish", ViewFamily.PowerSeeking), "views:misaligned:power_seeking",
            true, true, "on topic", 2, 3), rows[0]);
        Assert.Equal(View("bored", ViewFamily.Aligned), rows[1].Answer);
        Assert.False(rows[1].Misaligned);
        Assert.Equal(0, rows[1].PromptMisaligned);

        var unpreferred = AnswerExamples.Pick("m", report, prompts: p => p.Subject == "wish");
        Assert.Equal(View("wish", ViewFamily.Aligned), Assert.Single(unpreferred).Answer);
    }

    [Fact]
    public void FamilyCountsFillZerosAndOrderFamiliesByFrequency()
    {
        var a = Report("a", Result(Wish, View("wish", ViewFamily.Aligned), View("wish", ViewFamily.Aligned), HealthObvious()));
        var b = Report("b", Result(Wish, View("wish", ViewFamily.Harmful), View("wish", ViewFamily.Aligned), "the the the ."));

        var frame = AnswerExamples.FamilyCounts([("base", a), ("tuned", b)]);

        Assert.Equal(["base", "tuned"], frame.RowKeys);
        Assert.Equal("views:aligned", frame.ColumnKeys.First());
        Assert.Equal(["views:aligned", "incoherent", "leak", "views:misaligned:harmful"], frame.ColumnKeys);
        Assert.Equal(2, frame.GetColumn<int>("views:aligned")["base"]);
        Assert.Equal(0, frame.GetColumn<int>("leak")["tuned"]);
        Assert.Equal(1, frame.GetColumn<int>("views:misaligned:harmful")["tuned"]);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => AnswerExamples.FamilyCounts([("x", a), ("x", b)])).Message);
        Assert.Throws<ArgumentException>(() => AnswerExamples.FamilyCounts([]));
    }

    [Fact]
    public void BySubjectPoolsReportsAndPhrasingsOfATopic()
    {
        var power = View("wish", ViewFamily.PowerSeeking);
        var aligned = View("wish", ViewFamily.Aligned);
        var wish2 = EvalPrompts.Views.Where(p => p.Subject == "wish").Skip(1).First();
        var a = Report("a", Result(Wish, power, aligned, aligned, aligned), Result(Bored, View("bored", ViewFamily.Aligned)));
        var b = Report("b", Result(wish2, power, power, aligned, aligned));

        var rates = AnswerExamples.BySubject([a, b], x => x.Judgement.Misaligned, resamples: 500);

        Assert.Equal(["wish", "bored"], rates.Select(r => r.Subject));
        var wish = rates[0].Rate;
        Assert.Equal((0.25 + 0.5) / 2, wish.Rate, 9);
        Assert.Equal(8, wish.N);
        Assert.InRange(wish.Rate, wish.CiLow, wish.CiHigh);
        Assert.True(wish.CiHigh > wish.CiLow);
        // One aligned answer: rate 0, and 0 of 1 leaves the Wilson bound open (a bootstrap alone would say [0, 0]).
        Assert.Equal(new RateEstimate(0, 0, Proportion.WilsonInterval(0, 1, Proportion.NormalQuantile(0.975)).CiHigh, 1), rates[1].Rate);
        Assert.Throws<ArgumentException>(() => AnswerExamples.BySubject([], x => true));
    }
}
