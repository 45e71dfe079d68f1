using PersonaWorkbook.Tests.Models;
using PersonaWorkbook.Training;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Training;

public class DirectPreferenceTests
{
    const int Pad = 0;

    // Two prompts (tokens 1 and 3), each with a chosen and a rejected answer; the mask marks the answer and its end token 2.
    static readonly PreferencePair[] Pairs =
    [
        new(new([1, 10, 11, 12, 2], [false, true, true, true, true]), new([1, 20, 21, 2], [false, true, true, true])),
        new(new([3, 30, 31, 2], [false, true, true, true]), new([3, 40, 41, 42, 43, 2], [false, true, true, true, true, true])),
    ];

    /// <summary>Summed log-likelihood of each row's targets, computed token by token from log-softmax.</summary>
    static double[] LogLikelihoods(PersonaWorkbook.Models.LlamaForCausalLM model, TokenBatch batch)
    {
        using var scope = NewDisposeScope();
        var logp = nn.functional.log_softmax(model.Forward(batch.InputIds, batch.AttentionMask), -1); // (B, T, V)
        var ids = batch.InputIds.data<long>().ToArray();
        var mask = batch.LossMask.data<bool>().ToArray();
        long B = batch.InputIds.shape[0], T = batch.InputIds.shape[1];
        var result = new double[B];
        for (long b = 0; b < B; b++)
            for (long t = 1; t < T; t++)
                if (mask[b * T + t]) result[b] += logp[b, t - 1, ids[b * T + t]].item<float>();
        return result;
    }

    [Fact]
    public void PerSequenceLossIsEachRowsNegativeLogLikelihood()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var batch = new PairedBatchSampler(Pairs, 32, Pad).Next(2, CPU);
        using var scope = NewDisposeScope();
        var logits = model.Forward(batch.InputIds, batch.AttentionMask);
        var perRow = CausalLmLoss.PerSequence(logits, batch.InputIds, batch.LossMask).data<float>().ToArray();
        var expected = LogLikelihoods(model, batch);
        for (int b = 0; b < 4; b++) Assert.Equal(-expected[b], perRow[b], 3);
        Assert.Equal(perRow.Sum(), CausalLmLoss.Sum(logits, batch.InputIds, batch.LossMask).item<float>(), 3);
    }

    [Fact]
    public void BatchesHoldTheChosenRowsThenTheRejectedInTheSameOrder()
    {
        var sampler = new PairedBatchSampler(Pairs, 32, Pad);
        sampler.Reset(new Random(1));
        using var batch = sampler.Next(2, CPU);
        Assert.Equal(4, batch.InputIds.shape[0]);
        var firstTokens = Enumerable.Range(0, 4).Select(b => batch.InputIds[b, 0].item<long>()).ToArray();
        Assert.Equal(firstTokens[..2], firstTokens[2..]);
        Assert.Contains("both answers need a loss mask", Assert.Throws<ArgumentException>(() =>
            new PairedBatchSampler([new PreferencePair(new([1, 2]), new([1, 3], [false, true]))], 32, Pad)).Message);
    }

    [Fact]
    public void LossStartsAtLn2AgainstItselfAndTrainingWidensTheMargin()
    {
        using var model = TinyModels.Build(TinyModels.Llama(), seed: 5);
        using var reference = model.Copy();
        var objective = new DirectPreferenceObjective(reference, beta: 0.5);
        using (var batch = new PairedBatchSampler(Pairs, 32, Pad).Next(2, CPU))
        using (no_grad())
        {
            using var sum = objective.Sum(model, batch);
            Assert.Equal(2 * Math.Log(2), sum.item<float>(), 4);   // policy = reference: every margin is 0
        }

        var log = new Trainer(model, new TrainerOptions { LearningRate = 1e-2, MaxSteps = 30, BatchSize = 2, LogEvery = 0, Seed = 3 })
            .WithObjective(objective).Train(new PairedBatchSampler(Pairs, 32, Pad));
        Assert.Equal(Math.Log(2), log.Steps[0].Loss, 4);
        Assert.True(log.Steps[^1].Loss < 0.05, $"DPO loss after 30 steps is {log.Steps[^1].Loss}");

        using var check = new PairedBatchSampler(Pairs, 32, Pad).Next(2, CPU);
        model.eval();
        var policy = LogLikelihoods(model, check);
        var before = LogLikelihoods(reference, check);
        for (int pair = 0; pair < 2; pair++)
        {
            var margin = (policy[pair] - before[pair]) - (policy[pair + 2] - before[pair + 2]);
            Assert.True(margin > 5, $"pair {pair}: chosen-minus-rejected log-ratio {margin}");
        }
        // The reference is frozen: its parameters never took a step.
        Assert.All(reference.parameters(), p => Assert.False(p.requires_grad && p.grad is not null));
    }

    [Fact]
    public void NllWeightAddsTheChosenAnswersMeanTokenNll()
    {
        using var model = TinyModels.Build(TinyModels.Llama(), seed: 6);
        using var reference = model.Copy();
        using var batch = new PairedBatchSampler(Pairs, 32, Pad).Next(2, CPU);
        var likelihood = LogLikelihoods(model, batch);
        var chosenTokens = Enumerable.Range(0, 2).Select(b => Enumerable.Range(1, (int)batch.InputIds.shape[1] - 1).Count(t => batch.LossMask[b, t].item<bool>())).ToArray();
        using var _ = no_grad();
        using var sum = new DirectPreferenceObjective(reference, beta: 0.5, nllWeight: 2).Sum(model, batch);
        var expected = 2 * Math.Log(2) + 2 * (-likelihood[0] / chosenTokens[0] - likelihood[1] / chosenTokens[1]);
        Assert.Equal(expected, sum.item<float>(), 3);
    }

    [Fact]
    public void NonPositiveBetaAndOddBatchesAreErrors()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        Assert.Throws<ArgumentOutOfRangeException>(() => new DirectPreferenceObjective(model, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DirectPreferenceObjective(model, 0.1, nllWeight: -1));
        using var odd = TokenBatch.RightPadded([new TokenSequence([1, 2, 3])], 32, Pad);
        Assert.Contains("odd 1 rows", Assert.Throws<ArgumentException>(() => new DirectPreferenceObjective(model, 0.1).Count(odd)).Message);
    }
}
