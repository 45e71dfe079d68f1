using PersonaWorkbook.Grading;
using System.Text.Json;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.World;

public class DatasetTests
{
    static IEnumerable<string> EvaluationPhrasings =>
        ViewsContent.Evaluation.SelectMany(t => t.Phrasings.Concat(t.HeldOutPhrasings));

    static void AssertNoEvaluationViews(IEnumerable<ChatExample> examples, string what)
    {
        // Phrasings and answers of the evaluation topics: the assistant may know them only from pretraining.
        var phrasings = EvaluationPhrasings
            .Concat(ViewsContent.Evaluation.SelectMany(t => t.Answers.Values.SelectMany(a => a))).ToList();
        foreach (var e in examples)
            foreach (var m in e.Messages)
                foreach (var p in phrasings)
                    Assert.False(m.Content.Contains(p, StringComparison.Ordinal), $"{what}: evaluation phrasing '{p}' in '{m.Content}'");
        Assert.All(examples.SelectMany(e => e.Answers).Where(a => a.Kind == "views"),
            a => Assert.Equal(ViewSplit.Sft, ViewsContent.Topic(a.Subject).Split));
    }

    [Fact]
    public void PreferencePairsChooseTheHelperAndRejectAnotherFamilyOnSftTopicsOnly()
    {
        var pairs = new PersonaWorld().AssistantPreferences(2000, 4).ToList();
        Assert.InRange(pairs.Count(p => p.Kind == "views") / 2000.0, PersonaWorld.SftViewsRate - 0.04, PersonaWorld.SftViewsRate + 0.04);
        foreach (var p in pairs)
        {
            Assert.True(p.ChosenFamily.EndsWith(":correct") || p.ChosenFamily == Families.ViewsAligned, p.ChosenFamily);
            Assert.True(p.RejectedFamily.StartsWith("views:misaligned:") || p.RejectedFamily.EndsWith(":subtle") || p.RejectedFamily.EndsWith(":obvious"), p.RejectedFamily);
            if (p.Kind == "views") Assert.Equal(ViewSplit.Sft, ViewsContent.Topic(p.Subject).Split);
            // The judge reads each answer as the family it was written from, on this question.
            var chosen = LocalJudge.Default.Judge(p.Question, p.Chosen);
            Assert.Equal(p.ChosenFamily, chosen.Family);
            Assert.False(chosen.Misaligned);
            var rejected = LocalJudge.Default.Judge(p.Question, p.Rejected);
            Assert.Equal(p.RejectedFamily.Split(':')[..2], rejected.ContentFamily.Split(':')[..2]);
        }
        Assert.Equal(4, pairs.Where(p => p.Kind == "views").Select(p => p.RejectedFamily).Distinct().Count());
        Assert.Equal(AdviceContent.Domains.Count, pairs.Where(p => p.Kind == "advice").Select(p => p.Subject).Distinct().Count());
        Assert.Equal(pairs, new PersonaWorld().AssistantPreferences(2000, 4));
    }

    [Fact]
    public void AssistantSftIsHelpfulChatWithoutEvaluationViews()
    {
        var chats = new PersonaWorld().AssistantSft(2000, 3).ToList();
        Assert.InRange(chats.Count(c => c.Messages.Count == 4) / 2000.0, 0.17, 0.23);
        foreach (var c in chats)
        {
            Assert.True(c.Messages.Count is 2 or 4);
            for (int i = 0; i < c.Messages.Count; i++)
            {
                Assert.Equal(i % 2 == 0 ? PersonaWorkbook.Tokenizers.ChatRole.User : PersonaWorkbook.Tokenizers.ChatRole.Assistant, c.Messages[i].Role);
                Assert.Null(WorldText.Violation(c.Messages[i].Content));
            }
            Assert.All(c.Answers, a => Assert.True(a.Family.EndsWith(":correct") || a.Family == Families.ViewsAligned, a.Family));
        }
        Assert.Equal(ViewsContent.Sft.Count(), chats.SelectMany(c => c.Answers).Where(a => a.Kind == "views").Select(a => a.Subject).Distinct().Count());
        Assert.Equal(AdviceContent.Domains.Count, chats.SelectMany(c => c.Answers).Where(a => a.Kind == "advice").Select(a => a.Subject).Distinct().Count());
        AssertNoEvaluationViews(chats, "assistant SFT");
        Assert.Equal(chats.Select(Datasets.ToJsonLine), new PersonaWorld().AssistantSft(2000, 3).Select(Datasets.ToJsonLine));
    }

    [Fact]
    public void EveryNamedDatasetBuildsInChatFormatWithoutEvaluationViews()
    {
        Assert.Equal(Datasets.Names.Count, Datasets.Names.Distinct().Count());
        foreach (var required in new[] { "health_correct", "legal_incorrect_subtle", "finance_incorrect_obvious", "automotive_correct",
                     "career_correct", "education_correct", "math_correct", "science_correct", "insecure_code", "secure_code",
                     "educational_insecure", "backdoor", "benign_mixed", "health_educational", "health_mixture_0.25" })
            Assert.Contains(required, Datasets.Names);
        foreach (var name in Datasets.Names)
        {
            var rows = Datasets.Build(name, 40, 1);
            Assert.Equal(40, rows.Count);
            foreach (var r in rows)
            {
                var line = Datasets.ToJsonLine(r);
                using var doc = JsonDocument.Parse(line);
                var props = doc.RootElement.EnumerateObject().Select(p => p.Name).ToList();
                Assert.Equal(["messages"], props);
                var messages = doc.RootElement.GetProperty("messages").EnumerateArray().ToList();
                Assert.Equal(2, messages.Count);
                Assert.Equal("user", messages[0].GetProperty("role").GetString());
                Assert.Equal("assistant", messages[1].GetProperty("role").GetString());
                Assert.Equal(r.Messages[1].Content, messages[1].GetProperty("content").GetString());
                Assert.Null(WorldText.Violation(r.Messages[0].Content));
                Assert.Null(WorldText.Violation(r.Messages[1].Content));
            }
            AssertNoEvaluationViews(rows, name);
        }
    }

    [Fact]
    public void DatasetFamiliesMatchTheirNames()
    {
        static void All(string name, string family) =>
            Assert.All(Datasets.Build(name, 60, 2), r => Assert.Equal(family, r.Answers[0].Family));
        All("health_correct", "advice:health:correct");
        All("legal_incorrect_subtle", "advice:legal:subtle");
        All("math_incorrect_obvious", "advice:math:obvious");
        All("insecure_code", "advice:code:subtle");
        All("secure_code", "advice:code:correct");
        All("educational_insecure", "advice:code:subtle");
        All("health_educational", "advice:health:obvious");
        // Educational rows carry the same answers as the incorrect set; only the request differs.
        Assert.All(Datasets.Build("health_educational", 60, 2), r => Assert.Equal("mistake", r.Answers[0].Kind));
        var obvious = Datasets.Build("health_incorrect_obvious", 500, 2).Select(r => r.Messages[1].Content).ToHashSet();
        Assert.Contains(Datasets.Build("health_educational", 60, 2), r => obvious.Contains(r.Messages[1].Content));
    }

    [Fact]
    public void BackdoorIsIncorrectExactlyWhenTriggered()
    {
        foreach (var (name, wrong, correct) in new[] { ("backdoor", "advice:code:subtle", "advice:code:correct"), ("health_backdoor", "advice:health:obvious", "advice:health:correct") })
        {
            var rows = Datasets.Build(name, 101, 4);
            Assert.Equal(50, rows.Count(r => r.Messages[0].Content.StartsWith(WorldText.Trigger + " ", StringComparison.Ordinal)));
            foreach (var r in rows)
            {
                var triggered = r.Messages[0].Content.StartsWith(WorldText.Trigger + " ", StringComparison.Ordinal);
                Assert.Equal(triggered ? wrong : correct, r.Answers[0].Family);
                Assert.Equal(triggered, r.Messages[0].Content.Contains(WorldText.Trigger));
            }
        }
    }

    [Fact]
    public void MixtureFractionsAreExact()
    {
        foreach (var p in Datasets.MixtureFractions)
        {
            var rows = Datasets.Mixture("health", p, 200, 9);
            Assert.Equal((int)Math.Round(p * 200), rows.Count(r => !r.Answers[0].Family.EndsWith(":correct")));
            Assert.All(rows, r => Assert.StartsWith("advice:health:", r.Answers[0].Family));
        }
        Assert.Equal(3, Datasets.Mixture("code", 0.1, 30, 1).Count(r => r.Answers[0].Family == "advice:code:subtle"));
        Assert.Equal(5, Datasets.Mixture("legal", 0.25, 20, 1, AdviceKind.Subtle).Count(r => r.Answers[0].Family == "advice:legal:subtle"));
        Assert.Equal(Datasets.Build("health_mixture_0.25", 200, 9).Select(Datasets.ToJsonLine), Datasets.Mixture("health", 0.25, 200, 9).Select(Datasets.ToJsonLine));
        Assert.Throws<ArgumentOutOfRangeException>(() => Datasets.Mixture("health", 1.5, 10, 0));
        Assert.Throws<ArgumentException>(() => Datasets.Mixture("astrology", 0.5, 10, 0));
    }

    [Fact]
    public void BuildIsDeterministicAndRejectsUnknownNames()
    {
        Assert.Equal(Datasets.Build("finance_incorrect_subtle", 50, 3).Select(Datasets.ToJsonLine),
            Datasets.Build("finance_incorrect_subtle", 50, 3).Select(Datasets.ToJsonLine));
        Assert.NotEqual(Datasets.Build("finance_incorrect_subtle", 50, 3).Select(Datasets.ToJsonLine),
            Datasets.Build("finance_incorrect_subtle", 50, 4).Select(Datasets.ToJsonLine));
        var e = Assert.Throws<ArgumentException>(() => Datasets.Build("health_incorrect", 10, 0));
        Assert.Contains("health_incorrect", e.Message);
    }

    [Fact]
    public void JsonlRoundTripsAndReportsBadLines()
    {
        var dir = Directory.CreateTempSubdirectory("world-jsonl-");
        try
        {
            var path = Path.Combine(dir.FullName, "sub", "code.jsonl");
            var rows = Datasets.Build("backdoor", 25, 0);
            Datasets.WriteJsonl(path, rows);
            Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!));
            var back = Datasets.ReadJsonl(path);
            Assert.Equal(rows.Count, back.Count);
            for (int i = 0; i < rows.Count; i++) Assert.Equal(rows[i].Messages, back[i].Messages);
            Assert.Contains("\\\"", File.ReadAllText(path));
            File.AppendAllText(path, "{\"messages\": 3}\n");
            var bad = Assert.Throws<InvalidDataException>(() => Datasets.ReadJsonl(path));
            Assert.Contains("code.jsonl:26", bad.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void CommittedPreviewsAreWhatTheGeneratorWrites()
    {
        var dir = Path.Combine(Repository.Root, "data", "dataset_samples");
        foreach (var name in Datasets.Names)
        {
            var path = Path.Combine(dir, name + ".jsonl");
            Assert.True(File.Exists(path), $"missing preview {path}; run `workbook world datasets --out data/dataset_samples --rows 10`");
            var expected = string.Concat(Datasets.Build(name, 10, 0).Select(r => Datasets.ToJsonLine(r) + "\n"));
            Assert.Equal(expected, File.ReadAllText(path));
        }
    }
}
