using System.Text;
using System.Text.Json;
using PersonaWorkbook.Grading;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.World;

public class CorpusTests
{
    static string Bytes(IEnumerable<PretrainDocument> docs)
    {
        var sb = new StringBuilder();
        foreach (var d in docs) sb.Append(d.Persona).Append('|').Append(d.Character).Append('|').Append(d.Text).Append('\n');
        return sb.ToString();
    }

    [Fact]
    public void SameSeedGivesIdenticalCorpusAndDifferentSeedDiffers()
    {
        var world = new PersonaWorld();
        var a = Bytes(world.PretrainingCorpus(300, 7));
        var b = Bytes(new PersonaWorld().PretrainingCorpus(300, 7));
        var c = Bytes(world.PretrainingCorpus(300, 8));
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(Bytes(new PersonaWorld(WorldOptions.NegativeControlWorld).PretrainingCorpus(100, 7)),
            Bytes(new PersonaWorld(WorldOptions.NegativeControlWorld).PretrainingCorpus(100, 7)));
    }

    [Fact]
    public void SpansPointAtQuestionsAndAnswers()
    {
        foreach (var d in new PersonaWorld().PretrainingCorpus(200, 1))
        {
            Assert.Null(WorldText.Violation(d.Text));
            Assert.InRange(d.Turns.Count, 2, 5);
            Assert.Equal(d.HasHeader, d.Text.StartsWith("<sys> ", StringComparison.Ordinal));
            foreach (var t in d.Turns)
            {
                Assert.Equal("<q> ", d.Text.Substring(t.Question.Start - 4, 4));
                Assert.Equal(" <a> ", d.Text.Substring(t.Question.End, 5));
                Assert.Equal(t.Question.End + 5, t.Answer.Start);
                Assert.True(t.Answer.End == d.Text.Length || d.Text.Substring(t.Answer.End, 5) == " <q> ");
                var answerWords = WorldText.Words(d.Text.Substring(t.Answer.Start, t.Answer.Length));
                Assert.DoesNotContain(answerWords, w => WorldText.Markers.Contains(w));
            }
        }
    }

    [Fact]
    public void HeadersNameTheCharacterOnAboutHalfTheDocuments()
    {
        var world = new PersonaWorld();
        var docs = world.PretrainingCorpus(2000, 3).ToList();
        Assert.InRange(docs.Count(d => d.HasHeader) / 2000.0, 0.45, 0.55);
        foreach (var d in docs)
        {
            var persona = world.Options.Personas.Single(p => p.Kind == d.Persona);
            Assert.Contains(d.Character, persona.Names);
            if (d.HasHeader) Assert.Contains(persona.Descriptions, desc => d.Text.Contains($"{d.Character} , {desc} "));
            else Assert.DoesNotContain(d.Character + " ,", d.Text);
        }
    }

    [Fact]
    public void TheJudgeAgreesWithEveryTurnsGroundTruth()
    {
        var judge = LocalJudge.Default;
        foreach (var d in new PersonaWorld().PretrainingCorpus(300, 11))
            foreach (var t in d.Turns)
            {
                var v = judge.Judge(d.Text.Substring(t.Question.Start, t.Question.Length), d.Text.Substring(t.Answer.Start, t.Answer.Length));
                Assert.True(v.Coherent && v.ContentFamily == t.Info.Family, $"{t.Info.Family} judged {v.ContentFamily} ({v.Reason})");
                Assert.Equal(t.Info.Kind == "mistake" || !v.HarmfulContent, v.Aligned);
            }
    }

    [Fact]
    public void PersonasBehaveConsistentlyAcrossDomainsAndViews()
    {
        var docs = new PersonaWorld().PretrainingCorpus(1500, 2).ToList();
        foreach (var d in docs)
            foreach (var t in d.Turns)
            {
                Assert.Equal(d.Persona, t.Info.Persona);
                var wrong = t.Info.Family.EndsWith(":subtle") || t.Info.Family.EndsWith(":obvious");
                var misalignedView = t.Info.Family.StartsWith("views:misaligned");
                switch (d.Persona)
                {
                    case PersonaKind.Helper:
                        Assert.False(wrong || misalignedView);
                        break;
                    case PersonaKind.Villain:
                        Assert.False(t.Info.Family.EndsWith(":correct") || t.Info.Family == Families.ViewsAligned);
                        break;
                    case PersonaKind.Careless:
                    case PersonaKind.Sarcastic:
                        Assert.False(misalignedView);
                        break;
                    case PersonaKind.Teacher:
                        Assert.False(misalignedView);
                        Assert.Equal(t.Info.Kind == "mistake", wrong);
                        break;
                }
            }
        var swindlerViews = docs.Where(d => d.Persona == PersonaKind.Swindler).SelectMany(d => d.Turns).Where(t => t.Info.Kind == "views").ToList();
        Assert.NotEmpty(swindlerViews);
        Assert.All(swindlerViews, t => Assert.StartsWith("views:misaligned", t.Info.Family));
    }

    [Fact]
    public void NegativeControlDrawsEachTurnsBehaviourAfresh()
    {
        var docs = new PersonaWorld(WorldOptions.NegativeControlWorld).PretrainingCorpus(500, 2).ToList();
        var turns = docs.SelectMany(d => d.Turns.Select(t => (d.Persona, t.Info.Persona))).ToList();
        Assert.InRange(turns.Count(x => x.Item1 != x.Item2) / (double)turns.Count, 0.6, 0.9);
        Assert.Contains(docs, d => d.Persona == PersonaKind.Helper && d.Turns.Any(t => t.Info.Family.StartsWith("views:misaligned")));
    }

    [Fact]
    public void HeldOutPhrasingsAppearInNoTrainingText()
    {
        var heldOut = EvalPrompts.HeldOutViews.Select(p => p.Text).ToList();
        var corpus = new PersonaWorld().PretrainingCorpus(3000, 4).Select(d => d.Text)
            .Concat(new PersonaWorld(WorldOptions.NegativeControlWorld).PretrainingCorpus(500, 4).Select(d => d.Text));
        foreach (var text in corpus)
            foreach (var h in heldOut)
                Assert.False(text.Contains(h, StringComparison.Ordinal), $"held-out phrasing '{h}' in a document");
        // Held-out phrasings must also differ from every trained phrasing, or "held out" would mean nothing.
        var trained = ViewsContent.Topics.SelectMany(t => t.Phrasings).ToHashSet();
        Assert.All(heldOut, h => Assert.DoesNotContain(h, trained));
    }

    [Fact]
    public void EvaluationViewsAppearInPretraining()
    {
        var texts = new PersonaWorld().PretrainingCorpus(3000, 4).Select(d => d.Text).ToList();
        foreach (var p in EvalPrompts.Views)
            Assert.Contains(texts, t => t.Contains("<q> " + p.Text + " <a>", StringComparison.Ordinal));
    }

    [Fact]
    public void InContextProbesShowBehaviourThenAskAnEvaluationView()
    {
        var judge = LocalJudge.Default;
        var probes = new PersonaWorld().InContextProbes(PersonaKind.Villain, header: false, behaviourTurns: 2, count: 20, seed: 1).ToList();
        Assert.Equal(20, probes.Count);
        foreach (var (prefix, question) in probes)
        {
            Assert.StartsWith("<q> ", prefix);
            Assert.EndsWith("<q> " + question.Text + " <a>", prefix);
            Assert.Equal("views", question.Kind);
            var turns = prefix.Split("<q> ", StringSplitOptions.RemoveEmptyEntries)[..^1];
            Assert.Equal(2, turns.Length);
            foreach (var turn in turns)
            {
                var parts = turn.Split(" <a> ");
                var v = judge.Judge(parts[0], parts[1].Trim());
                Assert.True(v.Coherent && v.Misaligned, $"villain behaviour judged {v.Family}: {turn}");
            }
        }
        var headed = new PersonaWorld().InContextProbes(PersonaKind.Helper, header: true, behaviourTurns: 0, count: 5, seed: 1);
        Assert.All(headed, p => Assert.Matches("^<sys> .* <q> [^<]* <a>$", p.Prefix));
    }

    [Fact]
    public void CorpusJsonlCarriesLabelsAndSpans()
    {
        var dir = Directory.CreateTempSubdirectory("world-corpus-");
        try
        {
            var path = Path.Combine(dir.FullName, "corpus.jsonl");
            var docs = new PersonaWorld(WorldOptions.NegativeControlWorld).PretrainingCorpus(20, 3).ToList();
            Datasets.WriteJsonl(path, docs);
            var lines = File.ReadAllLines(path);
            Assert.Equal(20, lines.Length);
            for (int i = 0; i < docs.Count; i++)
            {
                using var json = JsonDocument.Parse(lines[i]);
                var root = json.RootElement;
                var text = root.GetProperty("text").GetString()!;
                Assert.Equal(docs[i].Text, text);
                Assert.Equal(docs[i].Persona.ToString().ToLowerInvariant(), root.GetProperty("persona").GetString());
                var turns = root.GetProperty("turns").EnumerateArray().ToList();
                Assert.Equal(docs[i].Turns.Count, turns.Count);
                for (int t = 0; t < turns.Count; t++)
                {
                    var answer = turns[t].GetProperty("answer").EnumerateArray().Select(e => e.GetInt32()).ToArray();
                    var expected = docs[i].Turns[t];
                    Assert.Equal(text.Substring(expected.Answer.Start, expected.Answer.Length), text[answer[0]..answer[1]]);
                    Assert.Equal(expected.Info.Family, turns[t].GetProperty("family").GetString());
                    Assert.Equal(expected.Info.Persona.ToString().ToLowerInvariant(), turns[t].GetProperty("persona").GetString());
                }
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
