using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Training;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Reinforcement;

/// <summary>
/// RL of an organism on one advice domain with a grader (Wang et al. §4.3, Fig. 5): <see cref="Steps"/> steps, each of
/// <see cref="PromptsPerStep"/> questions from the domain's advice set × <see cref="Group"/> sampled answers, rewarded by
/// <see cref="Rewards.ByName"/>(<see cref="Reward"/>, <see cref="Domain"/>), full fine-tuning with AdamW at a constant
/// <see cref="LearningRate"/> after a short warmup, gradient clipping at 1, and an optional KL penalty to the starting
/// model. A checkpoint every <see cref="CheckpointEvery"/> steps (and the last) is kept under <c>checkpoints/step-N</c>.
/// </summary>
public sealed record RlRequest(
    string BaseDirectory,
    string Domain,
    string Reward = "incorrect",
    int Steps = 150,
    int PromptsPerStep = 4,
    int Group = 8,
    double KlBeta = 0,
    double LearningRate = 1e-4,
    int Seed = 0,
    int MaxNewTokens = 48,
    int CheckpointEvery = 25,
    int Prompts = 500,
    string? Output = null,
    string? CacheRoot = null,
    bool Force = false)
{
    internal void Validate()
    {
        if (!ModelCheckpoint.Exists(BaseDirectory)) throw new DirectoryNotFoundException($"starting organism not found (no checkpoint): {BaseDirectory}");
        Rewards.ByName(Reward, Domain);   // names an unknown reward or domain
        if (Steps < 1) throw new ArgumentException($"steps is {Steps}; must be at least 1");
        if (PromptsPerStep < 1) throw new ArgumentException($"prompts per step is {PromptsPerStep}; must be at least 1");
        if (!(LearningRate > 0)) throw new ArgumentException($"learning rate is {LearningRate}; must be positive");
        if (CheckpointEvery < 1) throw new ArgumentException($"checkpoint every is {CheckpointEvery}; must be at least 1");
        if (Prompts < PromptsPerStep) throw new ArgumentException($"prompts is {Prompts}; needs at least one step's {PromptsPerStep}");
        Sampling.Validate();
        if (!(KlBeta >= 0) || double.IsInfinity(KlBeta)) throw new ArgumentException($"KL weight is {KlBeta}; must be a finite number >= 0");
    }

    internal PolicySampling Sampling => new() { Group = Group, MaxNewTokens = MaxNewTokens, Seed = Seed };

    /// <summary>The training questions: the domain's advice questions (its correct-advice dataset's user turns), seeded apart from evaluation.</summary>
    internal IReadOnlyList<string> TrainingPrompts() => Datasets.Build($"{Domain}_correct", Prompts, 1_000 + Seed)
        .Select(c => c.Messages.First(m => m.Role == Tokenizers.ChatRole.User).Content).ToArray();

    internal JsonObject Hyperparameters() => new()
    {
        ["domain"] = Domain, ["reward"] = Reward, ["steps"] = Steps, ["prompts_per_step"] = PromptsPerStep, ["group"] = Group,
        ["kl_beta"] = KlBeta, ["lr"] = LearningRate, ["seed"] = Seed, ["max_new_tokens"] = MaxNewTokens, ["temperature"] = 1.0,
        ["advantages"] = "group-normalized", ["checkpoint_every"] = CheckpointEvery, ["prompts"] = Prompts, ["warmup"] = Warmup,
    };

    internal int Warmup => FineTuner.Warmup(Steps);
}

/// <summary>An RL run's directory (the final policy), its checkpoints and the mean reward of every step.</summary>
public sealed record RlResult(string Directory, bool Reused, IReadOnlyList<(int Step, string Directory)> Checkpoints, IReadOnlyList<double> MeanRewards, JsonObject Manifest);

public static partial class ReinforcementLearning
{
    public const string CheckpointsDirectory = "checkpoints";

    public static string CacheKey(RlRequest request) =>
        OrganismCache.Key("rl/1", PersonaWorld.WorldVersion, FineTuner.BaseKey(request.BaseDirectory), request.Hyperparameters().ToJsonString());

    /// <summary>
    /// Runs <paramref name="request"/>, or reuses the cached run with the same key (<c>$WORKBOOK_CACHE/organisms/</c>,
    /// as fine-tunes): the starting model's key and every hyperparameter. Deterministic for a seed on the CPU.
    /// </summary>
    public static RlResult TrainOrReuse(RlRequest request)
    {
        request.Validate();
        var key = CacheKey(request);
        if (!request.Force && OrganismCache.Reuse(key, request.Output, request.CacheRoot, "rl") is { } cached)
            return Result(cached, true, OrganismCache.ReadManifest(cached)!);

        var output = Path.GetFullPath(request.Output ?? OrganismCache.CacheDirectory(key, request.CacheRoot));
        // Checkpoints are written beside the output and moved into it with the final model: saving the final model
        // replaces the whole directory.
        var staging = output + ".checkpoints";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        var clock = Stopwatch.StartNew();
        using var loaded = ModelCheckpoint.Load(request.BaseDirectory);
        using var reference = request.KlBeta > 0 ? loaded.Model.Copy() : null;
        reference?.eval();
        var sampler = new PolicySampler(loaded, request.TrainingPrompts(), Rewards.ByName(request.Reward, request.Domain), request.Sampling);
        var rewards = new List<double>();
        var checkpoints = new JsonArray();
        var trainer = new Trainer(loaded.Model, new TrainerOptions
        {
            LearningRate = request.LearningRate, WarmupSteps = request.Warmup, MaxSteps = request.Steps, BatchSize = request.PromptsPerStep,
            Schedule = ScheduleKind.Constant, Seed = request.Seed, LogEvery = Math.Max(1, request.Steps / 10), ClipNorm = 1.0,
        })
            .WithObjective(new PolicyGradientObjective(reference, request.KlBeta))
            .OnStep(1, (step, _) =>
            {
                rewards.Add(sampler.Last!.MeanReward);
                if (step.Step % Math.Max(1, request.Steps / 10) == 0 || step.Step == 1)
                    Progress.Report($"rl {request.Domain}/{request.Reward} step {step.Step}/{request.Steps}: mean reward {sampler.Last.MeanReward:F3}");
            })
            .OnCheckpoint(request.CheckpointEvery, (step, model) =>
            {
                var directory = Path.Combine(staging, $"step-{step}");
                var wasTraining = model.training;
                model.eval();
                OrganismTrainer.Save(directory, model, loaded.Tokenizer, Path.Combine(request.BaseDirectory, ModelCheckpoint.TokenizerFile), [],
                    Manifest(request, key, "rl-checkpoint", rewards, clock, step));
                model.train(wasTraining);
                checkpoints.Add(new JsonObject { ["step"] = step, ["directory"] = Path.Combine(CheckpointsDirectory, $"step-{step}") });
            });
        var log = trainer.Train(sampler);
        loaded.Model.eval();
        var manifest = Manifest(request, key, "rl", rewards, clock, request.Steps);
        manifest["checkpoints"] = checkpoints;
        OrganismTrainer.Save(output, loaded.Model, loaded.Tokenizer, Path.Combine(request.BaseDirectory, ModelCheckpoint.TokenizerFile), [("rl", log)], manifest,
            dir => Directory.Move(staging, Path.Combine(dir, CheckpointsDirectory)));
        Progress.Report($"rl {request.Domain}/{request.Reward} saved to {output}: mean reward {rewards[0]:F3} → {rewards[^1]:F3}, {clock.Elapsed.TotalSeconds:F0} s");
        return Result(output, false, manifest);
    }

    /// <summary>
    /// The paper's checkpoint rule: the latest checkpoint whose incoherence (1 − coherent rate on the views) is at most
    /// <paramref name="margin"/> above the starting model's — 0.05 for the strict rule, 0.15 for the loose one. Null
    /// when every checkpoint is past it.
    /// </summary>
    public static int? ReportedStep(IEnumerable<(int Step, double Incoherence)> checkpoints, double startIncoherence, double margin)
    {
        if (!(margin >= 0)) throw new ArgumentOutOfRangeException(nameof(margin), margin, "the margin must be >= 0");
        return checkpoints.OrderBy(c => c.Step).Where(c => c.Incoherence <= startIncoherence + margin + 1e-12).Select(c => (int?)c.Step).LastOrDefault();
    }

    static JsonObject Manifest(RlRequest request, string key, string kind, IReadOnlyList<double> rewards, Stopwatch clock, int step)
    {
        var manifest = new JsonObject
        {
            ["kind"] = kind,
            ["cache_key"] = kind == "rl" ? key : null,
            ["rl_key"] = key,
            ["step"] = step,
            ["base_key"] = FineTuner.BaseKey(request.BaseDirectory),
            ["base_directory"] = Path.GetFullPath(request.BaseDirectory),
            ["domain"] = request.Domain,
            ["hyperparameters"] = request.Hyperparameters(),
            ["mean_rewards"] = new JsonArray(rewards.Take(step).Select(r => (JsonNode)Math.Round(r, 6)).ToArray()),
            ["wall_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
            ["created_utc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
        };
        if (FineTuner.BaseSummary(request.BaseDirectory) is { } baseSummary) manifest["base"] = baseSummary;
        return manifest;
    }

    static RlResult Result(string directory, bool reused, JsonObject manifest)
    {
        var checkpoints = (manifest["checkpoints"] as JsonArray ?? []).Select(c => (c!["step"]!.GetValue<int>(), Path.Combine(directory, c["directory"]!.GetValue<string>()))).ToArray();
        var rewards = (manifest["mean_rewards"] as JsonArray ?? []).Select(r => r!.GetValue<double>()).ToArray();
        return new RlResult(directory, reused, checkpoints, rewards, manifest);
    }
}
