using PersonaWorkbook.Reinforcement;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook rl`: RL of an organism on one advice domain with the incorrect- or correct-answer grader, cached like fine-tunes.</summary>
public sealed class RlCommand : ICommand
{
    public string Name => "rl";
    public string Summary => "RL (group-relative policy gradient) of an organism on one advice domain with a grader";
    public string Usage =>
        "rl --base DIR --domain D --reward incorrect|correct [--steps N] [--prompts-per-step P] [--group G] [--kl BETA] [--lr X] [--seed S] [--checkpoint-every N] [--out DIR] [--force]";
    public string Description =>
        "Each step samples G answers (temperature 1) to P of the domain's advice questions from the policy as it is, rewards\n" +
        "each with the local judge's grader (incorrect: 1 for the domain's wrong advice, subtle or obvious; correct: 1 for its\n" +
        "correct advice — the control), and takes one AdamW step on the group-relative policy-gradient loss (advantage =\n" +
        "reward − group mean, over the group's standard deviation), plus BETA × a KL estimate to the starting model. A\n" +
        "checkpoint every N steps is kept under checkpoints/step-N. Prints the run's directory, whether it was reused, and\n" +
        "its mean reward at the first and last step.";

    public int Run(CommandLine args)
    {
        var defaults = new RlRequest("", "health");
        var request = new RlRequest(args.Required("base"), args.Required("domain"), args.Required("reward"),
            Steps: args.Int("steps", defaults.Steps), PromptsPerStep: args.Int("prompts-per-step", defaults.PromptsPerStep),
            Group: args.Int("group", defaults.Group), KlBeta: args.Double("kl", defaults.KlBeta), LearningRate: args.Double("lr", defaults.LearningRate),
            Seed: args.Int("seed", defaults.Seed), CheckpointEvery: args.Int("checkpoint-every", defaults.CheckpointEvery),
            Output: args.Option("out"), Force: args.Flag("force"));
        args.Done();
        var result = ReinforcementLearning.TrainOrReuse(request);
        Console.WriteLine($"{result.Directory}\t{(result.Reused ? "reused" : "trained")}\tmean reward {result.MeanRewards[0]:F3} -> {result.MeanRewards[^1]:F3}");
        return 0;
    }
}
