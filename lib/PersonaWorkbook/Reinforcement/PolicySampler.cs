using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Training;
using static TorchSharp.torch;

namespace PersonaWorkbook.Reinforcement;

/// <summary>How a <see cref="PolicySampler"/> draws and scores each step's answers.</summary>
public sealed record PolicySampling
{
    /// <summary>Answers sampled per prompt: the group whose mean reward is each answer's baseline.</summary>
    public int Group { get; init; } = 8;
    public double Temperature { get; init; } = 1.0;
    public int MaxNewTokens { get; init; } = 80;
    /// <summary>Divide each group's advantages by the group's standard deviation (GRPO); off: reward minus the group mean (RLOO-like).</summary>
    public bool NormalizeAdvantages { get; init; } = true;
    /// <summary>Seeds the sampling of every step (step k's draws are seeded by Seed and k).</summary>
    public long Seed { get; init; }

    internal void Validate()
    {
        if (Group < 2) throw new ArgumentException($"the group has {Group} answers; a group-relative baseline needs at least 2");
        if (!(Temperature > 0)) throw new ArgumentException($"temperature is {Temperature}; on-policy sampling needs a temperature > 0");
        if (MaxNewTokens < 1) throw new ArgumentException($"max new tokens is {MaxNewTokens}; must be at least 1");
    }
}

/// <summary>One step's draws: the rewards (prompt-major, <see cref="PolicySampling.Group"/> per prompt) and their mean.</summary>
public sealed record PolicyDraw(int Step, IReadOnlyList<string> Prompts, IReadOnlyList<string> Answers, IReadOnlyList<double> Rewards)
{
    public double MeanReward => Rewards.Average();
}

/// <summary>
/// The batch source of on-policy RL: each <see cref="Next"/> takes the next prompts (a new random order each epoch, as
/// the other sources), samples <see cref="PolicySampling.Group"/> answers to each from the policy as it is now, scores
/// them with the reward function, and returns prompt + answer rows whose loss mask marks the answer (its stop token
/// included) and whose row weights are the group-relative advantages, for <see cref="PolicyGradientObjective"/>. A
/// group whose answers all earn the same reward has zero advantage: it teaches nothing, as in GRPO.
/// </summary>
public sealed class PolicySampler : IBatchSource
{
    readonly LoadedModel policy;
    readonly ChatFormat format;
    readonly string[] prompts;
    readonly int[][] encoded;
    readonly RewardFunction reward;
    readonly PolicySampling sampling;
    readonly EpochShuffler shuffler;
    int draws;

    public PolicySampler(LoadedModel policy, IEnumerable<string> prompts, RewardFunction reward, PolicySampling? sampling = null)
    {
        this.sampling = sampling ?? new PolicySampling();
        this.sampling.Validate();
        this.policy = policy;
        this.reward = reward ?? throw new ArgumentNullException(nameof(reward));
        this.prompts = prompts.ToArray();
        if (this.prompts.Length == 0) throw new ArgumentException("no prompts to sample answers for");
        format = ChatFormat.Simple(policy.Tokenizer);
        encoded = ModelDiffing.RenderPrompts(format, this.prompts);
        var longest = encoded.Max(e => e.Length);
        if (longest + this.sampling.MaxNewTokens > policy.Config.MaxPositionEmbeddings)
            throw new ArgumentException($"a prompt of {longest} tokens plus {this.sampling.MaxNewTokens} new tokens exceeds the model's context of {policy.Config.MaxPositionEmbeddings}");
        shuffler = new EpochShuffler(this.prompts.Length);
    }

    public int Count => prompts.Length;

    /// <summary>The draws of the latest <see cref="Next"/>, or null before the first.</summary>
    public PolicyDraw? Last { get; private set; }

    public void Reset(Random random)
    {
        shuffler.Reset(random);
        draws = 0;
        Last = null;
    }

    /// <summary>A batch of <paramref name="batchSize"/> prompts × the group's answers.</summary>
    public TokenBatch Next(int batchSize, Device device)
    {
        var taken = shuffler.Take(batchSize);
        var rows = taken.SelectMany(p => Enumerable.Repeat(p, sampling.Group)).ToArray();
        IReadOnlyList<GeneratedSequence> generated;
        var wasTraining = policy.Model.training;
        policy.Model.eval();
        try
        {
            using var _ = no_grad();
            generated = TextGenerator.Generate(policy.Model, rows.Select(p => encoded[p]).ToArray(), new GenerationOptions
            {
                MaxNewTokens = sampling.MaxNewTokens, Temperature = sampling.Temperature, StopTokens = format.StopTokenIds,
                Seed = sampling.Seed * 1_000_003L + draws, PadTokenId = Math.Max(0, policy.Tokenizer.PadId),
            });
        }
        finally { policy.Model.train(wasTraining); }
        draws++;

        var answers = generated.Select(g => policy.Tokenizer.Decode(g.Tokens)).ToArray();
        var rewards = rows.Select((p, i) => Rewards.Checked(reward, prompts[p], answers[i])).ToArray();
        Last = new PolicyDraw(draws, rows.Select(p => prompts[p]).ToArray(), answers, rewards);
        var advantages = Advantages(rewards, sampling.Group, sampling.NormalizeAdvantages);
        var sequences = rows.Select((p, i) => new TokenSequence([.. encoded[p], .. generated[i].Tokens],
            [.. new bool[encoded[p].Length], .. Enumerable.Repeat(true, generated[i].Tokens.Length)])).ToArray();
        return TokenBatch.RightPadded(sequences, policy.Config.MaxPositionEmbeddings, Math.Max(0, policy.Tokenizer.PadId), device, advantages);
    }

    /// <summary>
    /// Reward minus its group's mean, divided by the group's standard deviation when <paramref name="normalize"/> (a
    /// group with no spread gets 0): consecutive runs of <paramref name="group"/> rewards are the groups.
    /// </summary>
    public static float[] Advantages(IReadOnlyList<double> rewards, int group, bool normalize)
    {
        if (group < 1 || rewards.Count % group != 0) throw new ArgumentException($"{rewards.Count} rewards do not split into groups of {group}");
        var advantages = new float[rewards.Count];
        for (int start = 0; start < rewards.Count; start += group)
        {
            var slice = Enumerable.Range(start, group).Select(i => rewards[i]).ToArray();
            var mean = slice.Average();
            var sd = Math.Sqrt(slice.Sum(r => (r - mean) * (r - mean)) / group);
            for (int i = 0; i < group; i++)
                advantages[start + i] = (float)(normalize ? (sd > 1e-12 ? (slice[i] - mean) / sd : 0) : slice[i] - mean);
        }
        return advantages;
    }
}
