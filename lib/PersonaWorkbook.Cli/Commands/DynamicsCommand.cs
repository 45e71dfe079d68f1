using System.Globalization;
using PersonaWorkbook.Detection;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Dynamics;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Sae;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook dynamics`: misaligned rate (and a latent) at steps of a misaligning fine-tune, without saving checkpoints.</summary>
public sealed class DynamicsCommand : ICommand
{
    public static IReadOnlyList<int> DefaultSteps { get; } = [0, 5, 10, 20, 40, 80, 150];

    public string Name => "dynamics";
    public string Summary => "misaligned rate (and an SAE latent) at steps of a fine-tune, measured in memory";
    public string Usage => "dynamics --base DIR --dataset NAME [--steps 0,5,10,20,40,80,150] [--batch 16] " + SharedOptions;
    public string Description =>
        "Runs the fine-tune `workbook finetune` would run (same data, seed and learning-rate schedule) and evaluates the model\n" +
        "at each step (0 = the starting model). --train-steps sets the fine-tune's length (its schedule); the run stops after\n" +
        "the last snapshot. With --sae and --latent, also the latent's mean activation on the model's answers.\n" +
        "Cached by a hash of everything that decides the numbers; --force re-measures.";

    internal const string SharedOptions =
        "[--rows N] [--seed S] [--lr X] [--train-steps N] [--lora-rank R] [--prompts views|heldout|betley|domains|DOMAIN] [--samples N] " +
        "[--eval-seed S] [--max-new-tokens M] [--sae DIR --latent I [--scope response|prompt|all] [--latent-samples K]] [--force] --json FILE";

    public int Run(CommandLine args) => RunSnapshots(args, "base", 16, DefaultSteps);

    /// <summary>The shared body of `dynamics` and `realign`, which differ in the start's name and the defaults.</summary>
    internal static int RunSnapshots(CommandLine args, string startOption, int defaultBatch, IReadOnlyList<int> defaultSteps)
    {
        var start = args.Required(startOption);
        var dataset = args.Required("dataset");
        var steps = args.Option("steps") is { } list ? ParseSteps(list) : defaultSteps;
        var batch = args.Int("batch", defaultBatch);
        var rows = args.Int("rows", FinetuneRequest.DefaultRows);
        var seed = args.Int("seed", 0);
        var lrValue = args.Double("lr", double.NaN);
        var trainSteps = args.Int("train-steps", -1);
        var rank = args.Int("lora-rank", FinetuneRequest.DefaultLoraRank);
        var prompts = args.Option("prompts", "views");
        var samples = args.Int("samples", 20);
        var evalSeed = args.Int("eval-seed", 0);
        var maxNew = args.Int("max-new-tokens", 80);
        var saeDir = args.Option("sae");
        var latentValue = args.Int("latent", -1);
        var scope = args.Option("scope", "response");
        var latentSamples = args.Int("latent-samples", 1);
        var force = args.Flag("force");
        var json = args.Required("json");
        args.Done();
        if ((saeDir is null) != (latentValue < 0)) throw new UsageException("--sae and --latent go together");
        // Name the option the user gave: for realign the directory is the misaligned model, not a base organism.
        if (!Directory.Exists(start)) throw new DirectoryNotFoundException($"--{startOption}: directory not found: {start}");
        var tokenScope = scope switch
        {
            "response" => TokenScope.Response,
            "prompt" => TokenScope.Prompt,
            "all" => TokenScope.All,
            _ => throw new UsageException($"--scope is response, prompt or all; got '{scope}'"),
        };

        var finetune = new FinetuneRequest(start, dataset, Rows: rows, Seed: seed, LoraRank: rank, LearningRate: double.IsNaN(lrValue) ? null : lrValue,
            Steps: trainSteps == -1 ? null : trainSteps, BatchSize: batch, Force: force);
        using var sae = saeDir is null ? null : SaeFiles.Load(saeDir);
        var request = new SnapshotRequest(finetune, steps, prompts, samples, evalSeed, maxNew,
            sae is null ? null : new LatentProbe(sae, latentValue, tokenScope),
            sae is null ? null : new LatentSampling { SamplesPerPrompt = latentSamples, MaxNewTokens = maxNew, Seed = evalSeed });
        var run = TrainingDynamics.RunOrReuse(request);
        run.Save(json);
        Console.WriteLine("step\tloss\tmisaligned\tci_low\tci_high\tcoherent\tpersona_consistent\tlatent");
        foreach (var p in run.Points)
            Console.WriteLine(string.Join('\t', p.Step, p.Loss?.ToString("F4", CultureInfo.InvariantCulture) ?? "-", F(p.Misaligned.Rate), F(p.Misaligned.CiLow),
                F(p.Misaligned.CiHigh), F(p.Coherent.Rate), F(p.PersonaConsistent.Rate), p.Latent?.Mean.ToString("G5", CultureInfo.InvariantCulture) ?? "-"));
        return 0;
    }

    static string F(double rate) => (100 * rate).ToString("F1", CultureInfo.InvariantCulture);

    static int[] ParseSteps(string list) => list.Split(',', StringSplitOptions.TrimEntries).Select(s =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : throw new UsageException($"--steps wants whole numbers separated by commas, got '{s}'")).ToArray();
}
