using System.Text.Json;
using PersonaWorkbook.Benchmarks;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook bench model`: TorchSharp vs PyTorch throughput on the default small model.</summary>
public sealed class BenchCommand : ICommand
{
    public string Name => "bench";
    public string Summary => "benchmark training and generation against the same model in PyTorch";
    public string Usage =>
        "bench model [--steps N] [--warmup N] [--batch N] [--threads N] [--runs N] [--python PATH] [--out FILE]\n" +
        "bench answers [--model DIR] [--samples N] [--runs N] [--threads N] [--python PATH] [--out FILE]";

    public string Description =>
        "" +
        "model: trains the default small Llama (context 128) for --steps steps on random tokens and generates greedily with\n" +
        "and without the KV cache, in TorchSharp and in the same architecture in PyTorch (peer_llama.py run by --python,\n" +
        "default /usr/bin/python3), and prints tokens/s side by side with the ratio; --runs runs of each side (default 3),\n" +
        "alternating so that a drifting machine affects both, and the medians. --out writes the results as JSON.\n" +
        "answers: graded answers per second of the evaluator on the views prompts (--samples per prompt, default 20) of\n" +
        "--model (default: the committed deep organism), against the PyTorch peer sampling the same rows with the same\n" +
        "settings and the same C# judge grading them; --runs runs (default 3) and their median.";

    public int Run(CommandLine args)
    {
        if (args.Subcommand("answers") is not null) return RunAnswers(args);
        var settings = new BenchmarkSettings
        {
            Steps = Positive(args.Int("steps", 20), "steps"),
            WarmupSteps = NonNegative(args.Int("warmup", 3), "warmup"),
            BatchSize = Positive(args.Int("batch", 8), "batch"),
            Threads = Positive(args.Int("threads", 2), "threads"),
        };
        var runs = Positive(args.Int("runs", 3), "runs");
        var python = args.Option("python", "/usr/bin/python3");
        var outPath = args.Option("out");
        var what = args.Positional("what to benchmark (model or answers)");
        if (what != "model") throw new UsageException($"unknown benchmark '{what}'; the benchmarks are 'model' and 'answers'");

        var ours = new List<BenchmarkResult>();
        var peer = new List<BenchmarkResult>();
        for (int i = 0; i < runs; i++)
        {
            Reporting.Progress.Report($"bench {i + 1}/{runs}: TorchSharp, {settings.WarmupSteps}+{settings.Steps} training steps, then generation");
            ours.Add(ModelBenchmark.RunTorchSharp(settings));
            Reporting.Progress.Report($"bench {i + 1}/{runs}: PyTorch peer ({python})");
            peer.Add(ModelBenchmark.RunPeer(settings, python));
        }
        var report = ModelBenchmark.FormatReport(settings, ours, peer);
        Console.Write(report);
        if (outPath is not null)
        {
            var json = JsonSerializer.Serialize(new
            {
                settings = new { settings.Steps, settings.WarmupSteps, settings.BatchSize, settings.ContextLength, settings.PromptLength, settings.NewTokens, settings.Threads, settings.Seed },
                config = JsonDocument.Parse(settings.Config.ToJson()).RootElement,
                torchsharp = ours,
                pytorch = peer,
                report,
            }, new JsonSerializerOptions { WriteIndented = true });
            AtomicFile.WriteAllText(outPath, json);
        }
        return 0;
    }

    static int RunAnswers(CommandLine args)
    {
        var model = args.Option("model") ?? (Organism.OrganismCache.CommittedRoot() is { } committed
            ? Path.Combine(committed, "base-deep-seed0")
            : throw new UsageException("--model is required outside the repository (no data/organisms to take the default from)"));
        var samples = Positive(args.Int("samples", 20), "samples");
        var runs = Positive(args.Int("runs", 3), "runs");
        var threads = Positive(args.Int("threads", 2), "threads");
        var python = args.Option("python", "/usr/bin/python3");
        var outPath = args.Option("out");
        args.Positional("what to benchmark (answers)");
        if (!Checkpoints.ModelCheckpoint.Exists(model)) throw new IOException($"{model}: no model checkpoint there");
        var results = new List<AnswerBenchmarkRun>();
        for (int i = 0; i < runs; i++)
        {
            Reporting.Progress.Report($"bench answers: run {i + 1}/{runs}");
            results.Add(AnswerBenchmark.Run(model, samples, threads, python));
        }
        var report = AnswerBenchmark.FormatReport(model, threads, results);
        Console.Write(report);
        if (outPath is not null)
            AtomicFile.WriteAllText(outPath, JsonSerializer.Serialize(new { model, samples, threads, runs = results, report }, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    static int Positive(int value, string name) => value > 0 ? value : throw new UsageException($"--{name} must be positive, got {value}");
    static int NonNegative(int value, string name) => value >= 0 ? value : throw new UsageException($"--{name} must be ≥ 0, got {value}");
}
