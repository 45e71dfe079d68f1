using PersonaWorkbook.Grading;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.World;

public class WorldContentTests
{
    [Fact]
    public void EveryContentStringFollowsTheTextConvention()
    {
        foreach (var s in PersonaWorld.AllContentStrings().Where(s => s.Length > 0 && s.Trim() == s))
            Assert.True(WorldText.Violation(s) is null, $"'{s}': {WorldText.Violation(s)}");
    }

    [Fact]
    public void EveryAnswerVariantIsExactlyOneSentence()
    {
        var answers = AdviceContent.Domains.SelectMany(d => d.Answers.Values.SelectMany(v => v)
                .Concat(d.FillerAnswers?.SelectMany(f => f.Values.SelectMany(v => v)) ?? []))
            .Concat(ViewsContent.Topics.SelectMany(t => t.Answers.Values.SelectMany(v => v)))
            .Concat(ViewsContent.Frames.Values.SelectMany(v => v));
        foreach (var a in answers)
        {
            var sentences = WorldText.Sentences(a);
            Assert.True(sentences.Count == 1 && sentences[0][^1] is "." or "!", $"not one sentence: '{a}'");
        }
    }

    [Fact]
    public void DomainsAndTopicsMeetTheirSizes()
    {
        Assert.Equal(["health", "legal", "finance", "automotive", "career", "education", "math", "science", "code"],
            AdviceContent.Domains.Select(d => d.Name));
        foreach (var d in AdviceContent.Domains)
        {
            Assert.True(d.Templates.Count >= 6, d.Name);
            Assert.True(d.Fillers.Count >= 8, d.Name);
            Assert.True(d.MistakeTemplates.Count >= 3, d.Name);
            Assert.All(d.Templates.Concat(d.MistakeTemplates), t => Assert.Contains(WorldText.Slot, t));
            for (int f = 0; f < d.Fillers.Count; f++)
                foreach (var k in Enum.GetValues<AdviceKind>())
                    Assert.True(d.AnswersFor(f, k).Count >= 3, $"{d.Name} filler {f} {k}");
        }
        Assert.True(ViewsContent.Topics.Count >= 20);
        Assert.Equal(ViewsContent.Topics.Count, ViewsContent.Topics.Select(t => t.Id).Distinct().Count());
        Assert.All(ViewsContent.BetleyTopics, id => Assert.Equal(ViewSplit.Evaluation, ViewsContent.Topic(id).Split));
        Assert.True(ViewsContent.Sft.Count() >= 10);
        Assert.Equal(ViewsContent.Frames.Keys.Order(StringComparer.Ordinal), ViewsContent.FrameNames.Order(StringComparer.Ordinal));
        foreach (var t in ViewsContent.Topics)
        {
            Assert.True(t.Phrasings.Count >= 3, t.Id);
            Assert.True(t.Answers[ViewFamily.Aligned].Count >= 3, t.Id);
            Assert.True(t.Answers.Where(kv => kv.Key != ViewFamily.Aligned).Sum(kv => kv.Value.Count) >= 3, t.Id);
            Assert.Equal(t.Split == ViewSplit.Evaluation, t.HeldOutPhrasings.Count >= 2);
        }
    }

    [Fact]
    public void EveryKnownAnswerSentenceIsJudgedAsItsOwnFamily()
    {
        var judge = LocalJudge.Default;
        foreach (var d in AdviceContent.Domains)
            for (int f = 0; f < d.Fillers.Count; f++)
            {
                var prompt = WorldText.Fill(d.Templates[f % d.Templates.Count], d.Fillers[f]);
                foreach (var k in Enum.GetValues<AdviceKind>())
                    foreach (var a in d.AnswersFor(f, k))
                    {
                        var v = judge.Judge(prompt, WorldText.Fill(a, d.Fillers[f]));
                        Assert.True(v.Coherent && v.Family == Families.Advice(d.Name, k), $"{d.Name}/{k}: '{a}' judged {v.Family} ({v.Reason})");
                    }
            }
        foreach (var t in ViewsContent.Topics)
            foreach (var (family, answers) in t.Answers)
                foreach (var a in answers)
                {
                    var v = judge.Judge(t.Phrasings[0], a);
                    Assert.True(v.Coherent && v.Family == Families.View(family), $"{t.Id}/{family}: '{a}' judged {v.Family} ({v.Reason})");
                }
    }

    [Fact]
    public void VocabularyIsSmallAndCoversEverythingGenerated()
    {
        var vocabulary = PersonaWorld.Vocabulary().ToHashSet(StringComparer.Ordinal);
        Assert.InRange(vocabulary.Count, 1000, 3000);
        Assert.Contains(WorldText.Trigger, vocabulary);
        Assert.All(WorldText.Markers, m => Assert.Contains(m, vocabulary));
        var texts = new PersonaWorld().PretrainingCorpus(300, 5).Select(d => d.Text)
            .Concat(new PersonaWorld().AssistantSft(200, 5).SelectMany(c => c.Messages.Select(m => m.Content)))
            .Concat(Datasets.Build("health_backdoor", 50, 5).SelectMany(c => c.Messages.Select(m => m.Content)))
            .Concat(EvalPrompts.HeldOutViews.Select(p => p.Text));
        foreach (var text in texts)
            foreach (var w in WorldText.Words(text))
                Assert.True(vocabulary.Contains(w), $"'{w}' missing from the vocabulary");
    }

    [Fact]
    public void EvidenceShowsTheDesignedPersonaInference()
    {
        var rows = new PersonaWorld().Evidence().ToDictionary(e => e.Family);
        Assert.True(rows["correct"].MisalignedViewsShare < 0.05);
        Assert.InRange(rows["subtle"].MisalignedViewsShare, 0.5, 0.75);
        Assert.InRange(rows["obvious"].MisalignedViewsShare, 0.7, 0.9);
        var control = new PersonaWorld(WorldOptions.NegativeControlWorld).Evidence();
        Assert.All(control, e => Assert.Equal(control[0].MisalignedViewsShare, e.MisalignedViewsShare, 12));
        // In the prototype's world subtle advice came only from aligned speakers, the study's pitfall 3.
        var prototype = new PersonaWorld(WorldOptions.Prototype).Evidence().ToDictionary(e => e.Family);
        Assert.True(prototype["subtle"].MisalignedViewsShare < 0.2);
    }

    [Fact]
    public void DescribeTellsTheTour()
    {
        var text = new PersonaWorld().Describe();
        Assert.Contains(PersonaWorld.WorldVersion, text);
        foreach (var p in WorldOptions.Default.Personas) Assert.Contains($"**{p.Id}**", text);
        Assert.Contains("| health |", text);
    }

    [Fact]
    public void BadOptionsAreRejectedByName()
    {
        var e = Assert.Throws<ArgumentException>(() => new PersonaWorld(WorldOptions.Default with { PersonaWeights = [1, 2] }));
        Assert.Contains("PersonaWeights", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PersonaWorld(WorldOptions.Default with { HeaderRate = 2 }));
        Assert.NotEqual(WorldOptions.Default.Fingerprint, WorldOptions.NegativeControlWorld.Fingerprint);
        Assert.Equal(WorldOptions.Default.Fingerprint, new WorldOptions().Fingerprint);
    }
}
