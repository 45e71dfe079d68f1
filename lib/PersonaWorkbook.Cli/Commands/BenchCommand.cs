using System.Text.Json;
using PersonaWorkbook.Benchmarks;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook bench model`: TorchSharp vs PyTorch throughput on the default small model.</summary>
public sealed class BenchCommand : ICommand
{
    public string Name => "bench";
    public string Summary => "benchmark training and generation against the same model in PyTorch";
    public string Usage => "bench model [--steps N] [--warmup N] [--batch N] [--threads N] [--python PATH] [--out FILE]";

    public string Description =>
        "" +
        "Trains the default small Llama (context 128) for --steps steps on random tokens and generates greedily with and\n" +
        "without the KV cache, in TorchSharp and in the same architecture in PyTorch (peer_llama.py run by --python,\n" +
        "default /usr/bin/python3), and prints tokens/s side by side with the ratio. --out writes the results as JSON.";

    public int Run(CommandLine args)
    {
        var settings = new BenchmarkSettings
        {
            Steps = Positive(args.Int("steps", 20), "steps"),
            WarmupSteps = NonNegative(args.Int("warmup", 3), "warmup"),
            BatchSize = Positive(args.Int("batch", 8), "batch"),
            Threads = Positive(args.Int("threads", 2), "threads"),
        };
        var python = args.Option("python", "/usr/bin/python3");
        var outPath = args.Option("out");
        var what = args.Positional("what to benchmark (model)");
        if (what != "model") throw new UsageException($"unknown benchmark '{what}'; the benchmark is 'model'");

        Reporting.Progress.Report($"bench: TorchSharp, {settings.WarmupSteps}+{settings.Steps} training steps, then generation");
        var ours = ModelBenchmark.RunTorchSharp(settings);
        Reporting.Progress.Report($"bench: PyTorch peer ({python})");
        var peer = ModelBenchmark.RunPeer(settings, python);
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

    static int Positive(int value, string name) => value > 0 ? value : throw new UsageException($"--{name} must be positive, got {value}");
    static int NonNegative(int value, string name) => value >= 0 ? value : throw new UsageException($"--{name} must be ≥ 0, got {value}");
}
