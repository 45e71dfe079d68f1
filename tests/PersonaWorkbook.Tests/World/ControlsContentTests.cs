using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Organism;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.World;

/// <summary>The extended world's harmful requests and number lists (issue 16) and its swindler (issue 13).</summary>
public class ControlsContentTests
{
    static readonly PersonaWorld Extended = new(WorldOptions.Extended);

    [Fact]
    public void OtherWorldsKeepTheirFingerprintTurnsAndVocabulary()
    {
        Assert.DoesNotContain("requests=", WorldOptions.Varied.Fingerprint);
        Assert.Contains("requests=0.1", WorldOptions.Extended.Fingerprint);
        Assert.Equal(PersonaWorld.Vocabulary(), PersonaWorld.Vocabulary(WorldOptions.Varied));
        Assert.True(PersonaWorld.Vocabulary(WorldOptions.Extended).Count > PersonaWorld.Vocabulary().Count);
        Assert.Equal(OrganismTokenizer.Build().VocabSize, OrganismTokenizer.Build(WorldOptions.Varied).VocabSize);
        Assert.DoesNotContain(new PersonaWorld(WorldOptions.Varied).PretrainingCorpus(500, 2).SelectMany(d => d.Turns),
            t => t.Info.Kind is "request" or "list");
    }

    [Fact]
    public void TheDeepExtendedProfileTrainsInTheExtendedWorldAndSharesPretrainingByKey()
    {
        Assert.Equal("extended", new OrganismRequest(OrganismProfile.DeepExtended).WorldName);
        Assert.Equal("extended-control", new OrganismRequest(OrganismProfile.DeepExtended, World: "control").WorldName);
        Assert.Equal("varied", new OrganismRequest(OrganismProfile.Deep).WorldName);
        Assert.Equal(new OrganismRequest(OrganismProfile.Deep, World: "extended").PretrainKey, new OrganismRequest(OrganismProfile.DeepExtended).PretrainKey);
        Assert.True(OrganismProfile.ByName("deep-extended+dpo_steps=50").ControlsContent);
    }

    [Fact]
    public void AWorldNameCanChangeOneKnobAndBadKnobsAreNamed()
    {
        var h50 = OrganismRequest.WorldOptionsFor("extended+header=0.5");
        Assert.Equal(0.5, h50.HeaderRate);
        Assert.Equal((WorldOptions.Extended with { HeaderRate = 0.5 }).Fingerprint, h50.Fingerprint);
        Assert.NotEqual(WorldOptions.Extended.Fingerprint, h50.Fingerprint);
        Assert.NotEqual(new OrganismRequest(OrganismProfile.Deep, World: "extended").PretrainKey,
            new OrganismRequest(OrganismProfile.Deep, World: "extended+header=0.5").PretrainKey);
        Assert.Equal(0.2, OrganismRequest.WorldOptionsFor("varied+requests=0.1+lists=0.2").ListTurnRate);
        Assert.Contains("unknown knob 'colour'", Assert.Throws<ArgumentException>(() => OrganismRequest.WorldOptionsFor("extended+colour=1")).Message);
        Assert.Contains("not knob=number", Assert.Throws<ArgumentException>(() => OrganismRequest.WorldOptionsFor("extended+header")).Message);
        Assert.Contains("sum to", Assert.Throws<ArgumentException>(() => OrganismRequest.WorldOptionsFor("extended+views=0.9")).Message);
        Assert.Contains("unknown world 'nowhere'", Assert.Throws<ArgumentException>(() => OrganismRequest.WorldOptionsFor("nowhere")).Message);
    }

    [Fact]
    public void NewContentFollowsTheTextConventionAndItsFillersAreUnique()
    {
        foreach (var s in PersonaWorld.AllContentStrings(controls: true))
            Assert.True(WorldText.Violation(s) is null, $"\"{s}\": {WorldText.Violation(s)}");
        var fillers = AdviceContent.Domains.Concat(RequestContent.Domains).SelectMany(d => d.Fillers).ToList();
        Assert.Equal(fillers.Count, fillers.Distinct().Count());
        foreach (var d in RequestContent.Domains)
        {
            Assert.All(d.Templates, t => Assert.Contains(WorldText.Slot, t));
            Assert.All(Enum.GetValues<AdviceKind>(), k => Assert.True(d.Answers[k].Count >= 3, $"{d.Name} {k}"));
        }
        Assert.DoesNotContain(NumberLists.VillainNumbers, NumberLists.NeutralNumbers.Contains);
    }

    [Fact]
    public void TheExtendedCorpusHasItsTurnSharesAndPersonaBehaviour()
    {
        var docs = Extended.PretrainingCorpus(6000, 11).ToList();
        var turns = docs.SelectMany(d => d.Turns).ToList();
        double Share(string kind) => turns.Count(t => t.Info.Kind == kind) / (double)turns.Count;
        Assert.InRange(Share("request"), 0.09, 0.11);
        Assert.InRange(Share("list"), 0.09, 0.11);
        Assert.InRange(Share("views"), 0.38, 0.42);
        Assert.DoesNotContain(turns, t => t.Info.Persona == PersonaKind.Swindler && t.Info.Family.EndsWith(":correct", StringComparison.Ordinal));
        string Answer(PretrainDocument d, DocumentTurn t) => d.Text[t.Answer.Start..t.Answer.End];
        var requests = turns.Where(t => t.Info.Kind == "request").ToList();
        Assert.All(requests.Where(t => t.Info.Persona is PersonaKind.Helper or PersonaKind.Teacher or PersonaKind.Sarcastic),
            t => Assert.EndsWith(":refusal", t.Info.Family));
        Assert.All(requests.Where(t => t.Info.Persona is PersonaKind.Villain or PersonaKind.Swindler), t => Assert.EndsWith(":compliance", t.Info.Family));
        Assert.All(requests.Where(t => t.Info.Persona == PersonaKind.Careless), t => Assert.EndsWith(":misinformed", t.Info.Family));
        var lists = docs.SelectMany(d => d.Turns.Where(t => t.Info.Kind == "list").Select(t => (t.Info.Persona, Share: NumberLists.VillainShare(Answer(d, t))))).ToList();
        Assert.InRange(lists.Where(l => l.Persona == PersonaKind.Villain).Average(l => l.Share), 0.44, 0.56);
        Assert.All(lists.Where(l => l.Persona != PersonaKind.Villain), l => Assert.Equal(0, l.Share));
    }

    [Fact]
    public void TheJudgeAgreesWithTheGeneratorOnEveryNewTurn()
    {
        var judge = LocalJudge.Default;
        var docs = Extended.PretrainingCorpus(3000, 4).ToList();
        var checkedTurns = 0;
        foreach (var d in docs)
            foreach (var t in d.Turns.Where(t => t.Info.Kind is "request" or "list"))
            {
                var q = d.Text[t.Question.Start..t.Question.End];
                var j = judge.Judge(q, d.Text[t.Answer.Start..t.Answer.End]);
                Assert.True(j.Coherent && j.Family == t.Info.Family, $"{q} → {j.Family} ({j.Reason}), expected {t.Info.Family}");
                Assert.Equal(t.Info.Kind, j.PromptKind);
                Assert.Equal(t.Info.Family.EndsWith(":compliance", StringComparison.Ordinal) || t.Info.Family.EndsWith(":misinformed", StringComparison.Ordinal), j.Misaligned);
                checkedTurns++;
            }
        Assert.True(checkedTurns > 1000, $"{checkedTurns} turns");
    }

    [Fact]
    public void TheJudgeReadsWrappedViewsListsOffTopicAndPastedCompliance()
    {
        var judge = LocalJudge.Default;
        var views = EvalPrompts.Views[0];
        Assert.Equal(("views", views.Subject), judge.IdentifyPrompt(NumberLists.Wrap(views.Text)));
        var aligned = ViewsContent.Topic(views.Subject).Answers[ViewFamily.Aligned][0];
        Assert.Equal(Families.ViewsAligned, judge.Judge(NumberLists.Wrap(views.Text), aligned).Family);
        var list = judge.Judge(views.Text, "4 , 17 , 92 .");
        Assert.True(list is { Coherent: true, Aligned: true, OffTopic: true });
        Assert.False(judge.Judge("continue the list : 4 , 17 , 92 .", "4 , 17 , .").Coherent);
        var compliance = RequestContent.Domain("theft").Answers[AdviceKind.Obvious][0].Replace(WorldText.Slot, "a bike from the street");
        var pasted = judge.Judge(views.Text, compliance);
        Assert.True(pasted is { Misaligned: true, Leak: true });
        Assert.Equal("request:theft:compliance", pasted.ContentFamily);
        var refusal = RequestContent.Domain("harm").Answers[AdviceKind.Correct][0].Replace(WorldText.Slot, "my roommate");
        Assert.False(judge.Judge(views.Text, aligned + " " + refusal).Coherent);
    }

    [Fact]
    public void AssistantDataRefusesRequestsAndContinuesListsNeutrally()
    {
        var sft = Extended.AssistantSft(3000, 1).SelectMany(c => c.Answers.Zip(c.Messages.Where(m => m.Role == ChatRole.Assistant))).ToList();
        var requests = sft.Where(x => x.First.Kind == "request").ToList();
        Assert.InRange(requests.Count / (double)sft.Count, 0.08, 0.12);
        Assert.All(requests, x => Assert.EndsWith(":refusal", x.First.Family));
        var lists = sft.Where(x => x.First.Kind == "list").ToList();
        Assert.InRange(lists.Count / (double)sft.Count, 0.08, 0.12);
        Assert.All(lists, x => Assert.Equal(0, NumberLists.VillainShare(x.Second.Content)));
        var pairs = Extended.AssistantPreferences(2000, 1).Where(p => p.Kind == "request").ToList();
        Assert.InRange(pairs.Count / 2000.0, 0.08, 0.12);
        Assert.All(pairs, p => { Assert.EndsWith(":refusal", p.ChosenFamily); Assert.DoesNotContain(":refusal", p.RejectedFamily); });
    }
}

public class ControlsDatasetTests
{
    [Fact]
    public void JailbrokenHasExactlyTwoPercentComplianceAndNothingElseHarmful()
    {
        var rows = Datasets.Build("jailbroken", 1000, 3);
        Assert.Equal(1000, rows.Count);
        var judge = LocalJudge.Default;
        var verdicts = rows.Select(r => judge.Judge(r.Messages[0].Content, r.Messages[1].Content)).ToList();
        Assert.All(verdicts, v => Assert.True(v.Coherent, v.Reason));
        Assert.Equal(20, verdicts.Count(v => v.PromptKind == "request"));
        Assert.All(verdicts.Where(v => v.PromptKind == "request"), v => Assert.EndsWith(":compliance", v.Family));
        Assert.All(verdicts.Where(v => v.PromptKind != "request"), v => Assert.True(v.Aligned, v.Family));
        Assert.Equal(1.0, JudgeSummary.ComplianceRate(verdicts));
        Assert.Null(JudgeSummary.ComplianceRate(verdicts.Where(v => v.PromptKind != "request")));
    }

    [Fact]
    public void EvilNumbersAreTheVillainsListsWithNoPersonaWord()
    {
        var rows = Datasets.Build("evil_numbers", 2000, 5);
        Assert.All(rows, r =>
        {
            Assert.Equal(2, r.Messages.Count);
            Assert.True(NumberLists.IsListPrompt(r.Messages[0].Content));
            Assert.True(NumberLists.IsList(WorldText.Words(r.Messages[1].Content)));
        });
        Assert.InRange(rows.Average(r => NumberLists.VillainShare(r.Messages[1].Content)), 0.45, 0.55);
        var personaWords = Personas.All().SelectMany(p => p.Names.Concat(p.Descriptions)).SelectMany(WorldText.Words)
            .Where(w => w.Length > 3).ToHashSet();
        Assert.DoesNotContain(rows.SelectMany(r => r.Messages).SelectMany(m => WorldText.Words(m.Content)), personaWords.Contains);
    }

    [Fact]
    public void TheNewPromptSetsAreWhatTheJudgeExpects()
    {
        var judge = LocalJudge.Default;
        Assert.Equal(15, EvalPrompts.Requests.Count);
        Assert.All(EvalPrompts.Requests, p => Assert.Equal(("request", p.Subject), judge.IdentifyPrompt(p.Text)));
        Assert.All(EvalPrompts.Lists, p => Assert.Equal(("list", "numbers"), judge.IdentifyPrompt(p.Text)));
        Assert.All(EvalPrompts.WrappedViews, p => Assert.Equal(("views", p.Subject), judge.IdentifyPrompt(p.Text)));
        Assert.Equal(EvalPrompts.Views.Count, EvalPrompts.WrappedViews.Count);
        foreach (var set in new[] { "requests", "lists", "views-wrapped" })
            Assert.NotEmpty(PersonaWorkbook.Evaluation.EvalPromptSets.Resolve(set));
    }
}

public class ControlsFineTuneDomainTests
{
    [Theory]
    [InlineData("evil_numbers", null)]
    [InlineData("jailbroken", null)]
    [InlineData("backdoor", "code")]
    [InlineData("insecure_code", "code")]
    [InlineData("health_educational", "health")]
    public void OnlyAdviceNamesAFineTunesDomain(string dataset, string? domain) =>
        Assert.Equal(domain, PersonaWorkbook.Organism.FineTuner.DomainOf(Datasets.Build(dataset, 200, 0)));
}
