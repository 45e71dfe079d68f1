using PersonaWorkbook.Models;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Models;
using PersonaWorkbook.Training;

namespace PersonaWorkbook.Tests.Training;

public class ResumableTrainingTests
{
    static readonly TokenSequence[] Corpus = Enumerable.Range(0, 12)
        .Select(i => new TokenSequence([1, .. Enumerable.Range(0, 9).Select(j => 3 + (i * 5 + j * 3) % 40), 2])).ToArray();

    static TrainerOptions Options => new()
    {
        LearningRate = 1e-2, WarmupSteps = 3, MaxSteps = 12, BatchSize = 4, GradAccumulation = 2, WeightDecay = 0.01,
        Schedule = ScheduleKind.Cosine, MinLrRatio = 0.1, LogEvery = 0, Seed = 5,
    };

    sealed class Interrupted : Exception;

    [Fact]
    public void AResumedRunEqualsAnUninterruptedOne()
    {
        using var init = TinyModels.Build(TinyModels.Llama(), seed: 4);
        using var whole = init.Copy();
        var expected = new Trainer(whole, Options).Train(new PaddedBatchSampler(Corpus, 32, 0));

        using var dir = new TempDirectory();
        var checkpoint = dir.File("checkpoint");
        using (var first = init.Copy())
            Assert.Throws<Interrupted>(() => new Trainer(first, Options).Resumable(checkpoint, every: 5)
                .OnStep(1, (step, _) => { if (step.Step == 7) throw new Interrupted(); })
                .Train(new PaddedBatchSampler(Corpus, 32, 0)));
        Assert.Equal(5, TrainingCheckpoint.Peek(checkpoint)!.Step);

        // A fresh process would start from the initial weights and a fresh source; the checkpoint brings back the rest.
        using var resumed = init.Copy();
        var log = new Trainer(resumed, Options).Resumable(checkpoint, every: 5).Train(new PaddedBatchSampler(Corpus, 32, 0));
        Assert.Equal(expected.Steps.Select(s => s.Loss), log.Steps.Select(s => s.Loss));
        Assert.Equal(expected.Steps.Select(s => s.GradNorm), log.Steps.Select(s => s.GradNorm));
        foreach (var ((name, a), (_, b)) in whole.state_dict().Zip(resumed.state_dict()))
            Assert.True(a.eq(b).all().item<bool>(), $"{name} differs after resuming");
    }

    [Fact]
    public void ACheckpointOfAnotherRunIsRefusedByName()
    {
        using var dir = new TempDirectory();
        var checkpoint = dir.File("checkpoint");
        using (var model = TinyModels.Build(TinyModels.Llama(), seed: 4))
            new Trainer(model, Options with { MaxSteps = 5 }).Resumable(checkpoint, every: 5).Train(new PaddedBatchSampler(Corpus, 32, 0));
        using var other = TinyModels.Build(TinyModels.Llama(), seed: 4);
        var e = Assert.Throws<InvalidDataException>(() => new Trainer(other, Options).Resumable(checkpoint, every: 5).Train(new PaddedBatchSampler(Corpus, 32, 0)));
        Assert.Contains(checkpoint, e.Message);
        Assert.Contains("5 steps", e.Message);

        File.WriteAllText(Path.Combine(checkpoint, "trainer.json"), "{ not json");
        var corrupt = Assert.Throws<InvalidDataException>(() => TrainingCheckpoint.Peek(checkpoint));
        Assert.Contains("trainer.json", corrupt.Message);
    }
}
