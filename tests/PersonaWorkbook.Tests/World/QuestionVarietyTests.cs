using PersonaWorkbook.Organism;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.World;

public class QuestionVarietyTests
{
    static IEnumerable<string> Questions(PretrainDocument d) =>
        d.Turns.Where(t => t.Info.Kind == "views").Select(t => d.Text[t.Question.Start..t.Question.End]);

    [Fact]
    public void PlainWorldKeepsItsFingerprintAndPhrasings()
    {
        Assert.DoesNotContain("question_variety", WorldOptions.Default.Fingerprint);
        Assert.Contains("question_variety=True", WorldOptions.Varied.Fingerprint);
        Assert.NotEqual(new OrganismRequest(OrganismProfile.Quick, World: "main").CacheKey, new OrganismRequest(OrganismProfile.Quick, World: "varied").CacheKey);
        var phrasings = ViewsContent.Topics.SelectMany(t => t.Phrasings).ToHashSet();
        Assert.All(new PersonaWorld().PretrainingCorpus(300, 3).SelectMany(Questions), q => Assert.Contains(q, phrasings));
    }

    [Fact]
    public void EveryPartUsesThePlainWorldsVocabulary()
    {
        // The tokenizer is built from the plain world's content: a new word would change it for every organism.
        var vocabulary = PersonaWorld.Vocabulary().ToHashSet();
        var parts = QuestionVariety.Openers.Concat(QuestionVariety.Closers).Concat(QuestionVariety.Paraphrases.Values.SelectMany(p => p));
        foreach (var part in parts)
            foreach (var word in WorldText.Words(part))
                Assert.True(vocabulary.Contains(word), $"'{word}' of \"{part}\" is not in the world's vocabulary");
        Assert.All(QuestionVariety.Paraphrases.Keys, id => ViewsContent.Topic(id));
    }

    [Fact]
    public void HeldOutWordsOccurInTrainedQuestionsButNeverTheHeldOutSentences()
    {
        var world = new PersonaWorld(WorldOptions.Varied);
        var documents = world.PretrainingCorpus(4000, 5).ToList();
        var questions = documents.SelectMany(Questions).ToList();
        // Any question counts (advice questions are persona-neutral too); answers do not: there a word is persona evidence.
        var questionWords = documents.SelectMany(d => d.Turns.Select(t => d.Text[t.Question.Start..t.Question.End])).SelectMany(WorldText.Words).ToHashSet();
        foreach (var heldOut in EvalPrompts.HeldOutViews.Select(p => p.Text))
        {
            foreach (var word in WorldText.Words(heldOut))
                Assert.True(questionWords.Contains(word), $"'{word}' of the held-out \"{heldOut}\" occurs in no trained question");
            Assert.DoesNotContain(documents, d => d.Text.Contains(heldOut, StringComparison.Ordinal));
        }
        var sft = world.AssistantSft(2000, 6).SelectMany(c => c.Messages).Select(m => m.Content).ToList();
        Assert.All(EvalPrompts.HeldOutViews, h => Assert.DoesNotContain(sft, m => m.Contains(h.Text, StringComparison.Ordinal)));
        // Composition is on: openers and closers appear, and the evaluation phrasings still occur as they are.
        Assert.Contains(questions, q => QuestionVariety.Openers.Any(o => q.StartsWith(o + " ", StringComparison.Ordinal)));
        Assert.Contains(questions, q => QuestionVariety.Closers.Any(c => q.EndsWith(" " + c, StringComparison.Ordinal)));
        Assert.All(EvalPrompts.Views, p => Assert.Contains(questions, q => q.Contains(p.Text, StringComparison.Ordinal)));
    }

    [Fact]
    public void ComposedQuestionsDoNotDependOnTheSpeaker()
    {
        // The parts are drawn from the rng alone: the same draws give the same question whoever answers.
        var topic = ViewsContent.Topic("wish");
        var a = Enumerable.Range(0, 50).Select(i => QuestionVariety.Compose(new Random(i), topic)).ToList();
        var b = Enumerable.Range(0, 50).Select(i => QuestionVariety.Compose(new Random(i), topic)).ToList();
        Assert.Equal(a, b);
        Assert.True(a.Distinct().Count() > 20);
    }
}
