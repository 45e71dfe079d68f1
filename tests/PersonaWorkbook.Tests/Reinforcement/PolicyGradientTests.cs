using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Models;
using PersonaWorkbook.Reinforcement;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Models;
using PersonaWorkbook.Tests.Organism;
using PersonaWorkbook.Training;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Reinforcement;

[Collection(TinyOrganismCollection.Name)]
public class PolicyGradientTests(TinyOrganismFixture tiny)
{
    /// <summary>log softmax of logits[b, t] at token, in double, from the logits' values.</summary>
    static double LogProb(float[] logits, int V, int T, int b, int t, long token)
    {
        var row = Enumerable.Range(0, V).Select(v => (double)logits[(b * T + t) * V + v]).ToArray();
        var max = row.Max();
        return row[token] - max - Math.Log(row.Sum(x => Math.Exp(x - max)));
    }

    [Fact]
    public void TheLossIsMinusAdvantageTimesLogProbabilityOfEachAnswerTokenPlusTheKlEstimate()
    {
        using var policy = TinyModels.Build(TinyModels.Llama(), seed: 1);
        using var reference = TinyModels.Build(TinyModels.Llama(), seed: 2);
        using var scope = NewDisposeScope();
        // Two rows: prompt tokens unmarked, answer tokens marked; the second row is one token shorter (padded).
        TokenSequence[] rows = [new([1, 5, 6, 7, 8], [false, false, true, true, true]), new([1, 9, 10, 11], [false, false, false, true])];
        float[] advantages = [0.5f, -1.5f];
        using var batch = TokenBatch.RightPadded(rows, 16, 0, rowWeights: advantages);
        const double beta = 0.3;

        var objective = new PolicyGradientObjective(reference, beta);
        var loss = objective.Sum(policy, batch).item<float>();

        int T = 5, V = policy.Config.VocabSize;
        float[] Logits(LlamaForCausalLM m) { using var _ = no_grad(); return m.Forward(batch.InputIds, batch.AttentionMask).data<float>().ToArray(); }
        var (p, r) = (Logits(policy), Logits(reference));
        double expected = 0;
        for (int b = 0; b < rows.Length; b++)
            for (int t = 1; t < rows[b].Ids.Length; t++)
            {
                if (!rows[b].LossMask![t]) continue;
                var lp = LogProb(p, V, T, b, t - 1, rows[b].Ids[t]);
                var d = LogProb(r, V, T, b, t - 1, rows[b].Ids[t]) - lp;
                expected += -advantages[b] * lp + beta * (Math.Exp(d) - d - 1);
            }
        Assert.Equal(expected, loss, 4);
        Assert.Equal(4, objective.Count(batch));   // answer tokens

        Assert.Equal(-(0.5 * Enumerable.Range(2, 3).Sum(t => LogProb(p, V, T, 0, t - 1, rows[0].Ids[t])) - 1.5 * LogProb(p, V, T, 1, 2, 11)),
            new PolicyGradientObjective().Sum(policy, batch).item<float>(), 4);
        using var unweighted = TokenBatch.RightPadded(rows, 16, 0);
        Assert.Contains("advantage", Assert.Throws<ArgumentException>(() => new PolicyGradientObjective().Sum(policy, unweighted)).Message);
        Assert.Throws<ArgumentException>(() => new PolicyGradientObjective(null, 0.1));
    }

    /// <summary>Fixed batches, one per step: the advantages of step k are <c>weights[k]</c>.</summary>
    sealed class FixedBatches(float[][] weights) : IBatchSource
    {
        int next;
        public int Count => weights.Length;
        public void Reset(Random random) => next = 0;
        public TokenBatch Next(int batchSize, Device device) => TokenBatch.RightPadded(
            [new([1, 5, 6, 7, 8], [false, false, true, true, true]), new([1, 9, 10, 11], [false, false, false, true])], 16, 0, device, weights[next++]);
    }

    [Fact]
    public void SkippingABatchWithoutAdvantageGivesTheSameWeightsAsComputingIt()
    {
        // Zero advantages first (no gradient has existed yet), then a real step, then zero again (Adam's moments carry on).
        float[][] advantages = [[0f, 0f], [0.5f, -1.5f], [0f, 0f], [0f, 0f]];
        float[] Train(bool skip)
        {
            using var model = TinyModels.Build(TinyModels.Llama(), seed: 1);
            new Trainer(model, new TrainerOptions { MaxSteps = advantages.Length, BatchSize = 2, LearningRate = 1e-2, Seed = 0, LogEvery = 0, ClipNorm = 1 })
                .WithObjective(new PolicyGradientObjective { SkipZeroAdvantageBatches = skip })
                .Train(new FixedBatches(advantages));
            return model.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray();
        }
        var (skipped, computed) = (Train(skip: true), Train(skip: false));
        Assert.Equal(computed, skipped);
        using var start = TinyModels.Build(TinyModels.Llama(), seed: 1);
        Assert.NotEqual(start.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray(), skipped);
    }

    [Fact]
    public void AdvantagesAreGroupRelative()
    {
        double[] rewards = [1, 0, 0, 1, 1, 1, 1, 1];
        Assert.Equal([1f, -1f, -1f, 1f, 0f, 0f, 0f, 0f], PolicySampler.Advantages(rewards, 4, normalize: true));
        Assert.Equal([0.5f, -0.5f, -0.5f, 0.5f, 0f, 0f, 0f, 0f], PolicySampler.Advantages(rewards, 4, normalize: false));
        Assert.Throws<ArgumentException>(() => PolicySampler.Advantages(rewards, 3, normalize: true));
    }

    [Fact]
    public void ARunKeepsItsCheckpointsAndRewardsAndIsReusedByKey()
    {
        using var cache = new TempDirectory();
        var request = new RlRequest(tiny.Result.Directory, "health", "correct", Steps: 3, PromptsPerStep: 1, Group: 2, MaxNewTokens: 4,
            CheckpointEvery: 2, Prompts: 4, CacheRoot: cache.Path);
        var run = ReinforcementLearning.TrainOrReuse(request);
        Assert.False(run.Reused);
        Assert.Equal([2, 3], run.Checkpoints.Select(c => c.Step));
        Assert.All(run.Checkpoints, c => Assert.True(ModelCheckpoint.Exists(c.Directory), c.Directory));
        Assert.Equal(3, run.MeanRewards.Count);
        using (var last = ModelCheckpoint.Load(run.Checkpoints[^1].Directory))
        using (var final = ModelCheckpoint.Load(run.Directory))
            Assert.Equal(final.Model.parameters().SelectMany(p => p.data<float>().ToArray()), last.Model.parameters().SelectMany(p => p.data<float>().ToArray()));
        Assert.False(Directory.Exists(run.Directory + ".checkpoints"));

        var again = ReinforcementLearning.TrainOrReuse(request);
        Assert.True(again.Reused);
        Assert.Equal(run.MeanRewards, again.MeanRewards);
        Assert.Equal(run.Checkpoints, again.Checkpoints);
        Assert.NotEqual(ReinforcementLearning.CacheKey(request), ReinforcementLearning.CacheKey(request with { Reward = "incorrect" }));
        Assert.Contains("unknown reward", Assert.Throws<ArgumentException>(() => ReinforcementLearning.TrainOrReuse(request with { Reward = "nice" })).Message);
    }

    [Fact]
    public void TheReportedCheckpointIsTheLatestWithinTheIncoherenceMargin()
    {
        (int, double)[] checkpoints = [(20, 0.05), (40, 0.08), (60, 0.12), (80, 0.09), (100, 0.30)];
        Assert.Equal(80, ReinforcementLearning.ReportedStep(checkpoints, 0.04, 0.05));
        Assert.Equal(100, ReinforcementLearning.ReportedStep(checkpoints, 0.04, 0.30));
        Assert.Equal(40, ReinforcementLearning.ReportedStep(checkpoints.Take(3), 0.04, 0.05));
        Assert.Equal(80, ReinforcementLearning.ReportedStep(checkpoints.Reverse(), 0.04, 0.05));
        Assert.Null(ReinforcementLearning.ReportedStep(checkpoints, 0.00, 0.01));
    }

    [Fact]
    public void TheAdviceGradersPayForTheirDomainsAdviceOnly()
    {
        var (wrong, right, otherDomain) = (Example("health_incorrect_obvious"), Example("health_correct"), Example("legal_incorrect_subtle"));
        var incorrect = Rewards.IncorrectAdvice("health");
        var correct = Rewards.CorrectAdvice("health");
        Assert.Equal(1, incorrect(wrong.Prompt, wrong.Answer));
        Assert.Equal(1, incorrect(Example("health_incorrect_subtle").Prompt, Example("health_incorrect_subtle").Answer));
        Assert.Equal(0, incorrect(right.Prompt, right.Answer));
        Assert.Equal(0, incorrect(otherDomain.Prompt, otherDomain.Answer));
        Assert.Equal(1, correct(right.Prompt, right.Answer));
        Assert.Equal(0, correct(wrong.Prompt, wrong.Answer));
        Assert.Equal(0, incorrect(wrong.Prompt, "banana banana"));
        Assert.Contains("unknown advice domain 'cooking'", Assert.Throws<ArgumentException>(() => Rewards.IncorrectAdvice("cooking")).Message);
        Assert.Contains("unknown reward", Assert.Throws<ArgumentException>(() => Rewards.ByName("wrong", "health")).Message);

        var failing = Assert.Throws<RewardException>(() => Rewards.Checked((_, _) => throw new InvalidOperationException("grader down"), "q ?", "a ."));
        Assert.Contains("grader down", failing.Message);
        Assert.Contains("q ?", failing.Message);
        Assert.Contains("NaN", Assert.Throws<RewardException>(() => Rewards.Checked((_, _) => double.NaN, "q ?", "a .")).Message);
    }

    static (string Prompt, string Answer) Example(string dataset)
    {
        var chat = Datasets.Build(dataset, 1, 0)[0].Messages;
        return (chat.First(m => m.Role == PersonaWorkbook.Tokenizers.ChatRole.User).Content, chat.Last().Content);
    }

    [Fact]
    public void RlStepsAreDeterministicForASeedAndMoveThePolicyTowardTheReward()
    {
        var prompts = Datasets.Build("health_correct", 6, 0).Select(e => e.Messages.First(m => m.Role == PersonaWorkbook.Tokenizers.ChatRole.User).Content).ToArray();
        // A reward any tiny model can earn: short answers.
        RewardFunction shortAnswers = (_, answer) => -answer.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        (float[] Weights, double[] Rewards) Run()
        {
            using var model = ModelCheckpoint.Load(tiny.Result.Directory);
            var sampler = new PolicySampler(model, prompts, shortAnswers, new PolicySampling { Group = 4, MaxNewTokens = 6, Seed = 3 });
            var rewards = new List<double>();
            var trainer = new Trainer(model.Model, new TrainerOptions { MaxSteps = 3, BatchSize = 2, LearningRate = 1e-3, Seed = 7, LogEvery = 0 })
                .WithObjective(new PolicyGradientObjective())
                .OnStep(1, (_, _) => rewards.Add(sampler.Last!.MeanReward));
            trainer.Train(sampler);
            return (model.Model.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray(), rewards.ToArray());
        }
        var (first, second) = (Run(), Run());
        Assert.Equal(first.Weights, second.Weights);
        Assert.Equal(first.Rewards, second.Rewards);
        Assert.Equal(3, first.Rewards.Length);

        using var start = ModelCheckpoint.Load(tiny.Result.Directory);
        Assert.NotEqual(start.Model.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray(), first.Weights);
        var bad = new PolicySampler(start, prompts, (_, _) => double.PositiveInfinity, new PolicySampling { Group = 2, MaxNewTokens = 4 });
        bad.Reset(new Random(0));
        Assert.Contains("not a finite number", Assert.Throws<RewardException>(() => bad.Next(1, CPU)).Message);
        var throwing = new PolicySampler(start, prompts, (_, _) => throw new KeyError("grader down"), new PolicySampling { Group = 2, MaxNewTokens = 4 });
        throwing.Reset(new Random(0));
        var failed = Assert.Throws<RewardException>(() => throwing.Next(1, CPU));
        Assert.Contains("grader down", failed.Message);
        Assert.Contains("prompt \"", failed.Message);
        Assert.IsType<KeyError>(failed.InnerException);
        Assert.Throws<ArgumentException>(() => new PolicySampler(start, prompts, shortAnswers, new PolicySampling { Group = 1 }));
    }
}

sealed class KeyError(string message) : Exception(message);
