using System.Text.Json;
using PersonaWorkbook.Sae;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook bench-sae`: TopK SAE training throughput against a dense PyTorch SAE and the encoder-matmul floor.</summary>
public sealed class SaeBenchCommand : ICommand
{
    public string Name => "bench-sae";
    public string Summary => "benchmark TopK SAE training against a dense PyTorch SAE and the encoder-matmul floor";
    public string Usage => "bench-sae [--d-in N] [--d-sae N] [--k N] [--batch N] [--steps N] [--warmup N] [--threads N] [--python PATH] [--no-python] [--out FILE]";

    public string Description =>
        "" +
        "Times a TopK SAE training step (sparse decode, scattered encoder gradient, Adam, unit-norm decoder) on random\n" +
        "activations, the encoder matmul alone (the floor), and the same SAE written densely in PyTorch\n" +
        "(sae_dense_baseline.py run by --python, default /usr/bin/python3; --no-python skips it), at the same shape and\n" +
        "thread count, and prints median step times, tokens/s and the ratios. --out writes the results as JSON.\n" +
        "On a machine shared with other busy processes, start it with OMP_WAIT_POLICY=PASSIVE (inherited by the\n" +
        "baseline): spinning OpenMP workers otherwise make every small parallel op many times slower.";

    public int Run(CommandLine args)
    {
        var d = new SaeBenchmarkSettings();
        var settings = new SaeBenchmarkSettings(
            Positive(args.Int("d-in", d.DIn), "d-in"), Positive(args.Int("d-sae", d.DSae), "d-sae"), Positive(args.Int("k", d.K), "k"),
            Positive(args.Int("batch", d.Batch), "batch"), Positive(args.Int("steps", d.Steps), "steps"),
            NonNegative(args.Int("warmup", d.Warmup), "warmup"), Positive(args.Int("threads", d.Threads), "threads"));
        if (settings.K > settings.DSae) throw new UsageException($"--k {settings.K} exceeds --d-sae {settings.DSae}");
        var python = args.Option("python", "/usr/bin/python3");
        var skipPython = args.Flag("no-python");
        var outPath = args.Option("out");
        args.Done();

        Reporting.Progress.Report($"bench-sae: TorchSharp, {settings.Warmup}+{settings.Steps} steps");
        var result = SaeBenchmark.Run(settings);
        if (!skipPython)
        {
            Reporting.Progress.Report($"bench-sae: dense PyTorch baseline ({python})");
            result = SaeBenchmark.WithDenseBaseline(result, python);
        }
        var report = SaeBenchmark.Format(result);
        Console.Write(report);
        if (outPath is not null)
            AtomicFile.WriteAllText(outPath, JsonSerializer.Serialize(new
            {
                settings = result.Settings, result.EncoderMs, result.StepMs, result.SelectionMs, result.ForwardBackwardMs, result.DenseStepMs,
                result.DenseEncoderMs, result.DenseTorchVersion, result.TokensPerSecond, result.SpeedupOverDense, result.StepOverFloor,
                StepOverFloorQuartiles = new[] { result.StepOverFloorQuartiles.Low, result.StepOverFloorQuartiles.High }, report,
            }, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    static int Positive(int value, string name) => value > 0 ? value : throw new UsageException($"--{name} must be positive, got {value}");
    static int NonNegative(int value, string name) => value >= 0 ? value : throw new UsageException($"--{name} must be ≥ 0, got {value}");
}
