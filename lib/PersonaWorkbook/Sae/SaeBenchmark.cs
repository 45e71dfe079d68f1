using PersonaWorkbook.Statistics;
using PersonaWorkbook.Benchmarks;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>Shape and length of an SAE training benchmark.</summary>
public sealed record SaeBenchmarkSettings(int DIn = 256, int DSae = 8192, int K = 32, int Batch = 4096, int Steps = 10, int Warmup = 2, int Threads = 2, int Seed = 0);

/// <summary>
/// Median milliseconds per call of each measured piece (ours), and of the dense PyTorch baseline when run.
/// <see cref="StepOverFloor"/> is the median over rounds of step time / encoder time measured back to back in the same
/// round, which holds up better than a ratio of medians when other processes load the machine;
/// <see cref="StepOverFloorQuartiles"/> are the same ratios' quartiles, the spread within this run.
/// </summary>
public sealed record SaeBenchmarkResult(SaeBenchmarkSettings Settings, double EncoderMs, double StepMs, double SelectionMs, double ForwardBackwardMs,
    double StepOverFloor, (double Low, double High) StepOverFloorQuartiles, double? DenseStepMs = null, double? DenseEncoderMs = null, string? DenseTorchVersion = null)
{
    public double TokensPerSecond => Settings.Batch / (StepMs / 1000);
    public double? DenseTokensPerSecond => DenseStepMs is { } d ? Settings.Batch / (d / 1000) : null;
    /// <summary>How many times faster our step is than the dense PyTorch step.</summary>
    public double? SpeedupOverDense => DenseStepMs / StepMs;
}

/// <summary>
/// `workbook bench-sae`: TopK SAE training tokens/s in TorchSharp against the same SAE written densely in PyTorch
/// (sae_dense_baseline.py, embedded here) and against the time of the encoder matmul alone.
/// </summary>
public static class SaeBenchmark
{
    public static SaeBenchmarkResult Run(SaeBenchmarkSettings s)
    {
        set_num_threads(s.Threads);
        using var scope = NewDisposeScope();
        var config = new SaeConfig { DIn = s.DIn, DSae = s.DSae, K = s.K, Architecture = SaeArchitecture.TopK };
        using var sae = new SparseAutoencoder(config, seed: s.Seed);
        using var trainer = new SaeTrainer(sae, new SaeTrainingOptions { NormalizeActivations = false, DecoderBiasInit = DecoderBiasInit.Zero, LogEvery = int.MaxValue });
        var x = randn(s.Batch, s.DIn, generator: new Generator((ulong)s.Seed));
        trainer.Initialise([x]);
        var options = new SaeTrainingOptions();
        Tensor pre;
        using (no_grad()) pre = sae.PreActivationsScaled(x);

        void Encoder()
        {
            using var _ = no_grad();
            using var centred = x - sae.b_dec;
            addmm(sae.b_enc, centred, sae.EncoderT.t(), 1, 1).Dispose();
        }
        void Selection()
        {
            using var step = NewDisposeScope();
            SparseSelection.PerToken(pre, s.K);
        }
        void ForwardBackward()
        {
            using var step = NewDisposeScope();
            foreach (var p in sae.Parameters) p.grad?.zero_();
            SaeObjective.ForwardBackward(sae, x, null, options);
        }
        void Step() => trainer.Step(x);

        Action[] pieces = [Encoder, Selection, ForwardBackward, Step];
        var times = pieces.Select(_ => new List<double>()).ToArray();
        for (var round = 0; round < s.Warmup + s.Steps; round++)
            for (var i = 0; i < pieces.Length; i++)
            {
                // Interleaved so load from other processes hits every piece alike.
                var clock = Stopwatch.StartNew();
                pieces[i]();
                if (round >= s.Warmup) times[i].Add(clock.Elapsed.TotalMilliseconds);
            }
        var ratios = times[3].Zip(times[0], (step, floor) => step / floor).Order().ToArray();
        return new SaeBenchmarkResult(s, Quantiles.Median(times[0]), Quantiles.Median(times[3]), Quantiles.Median(times[1]), Quantiles.Median(times[2]),
            Quantiles.OfSorted(ratios, 0.5), (Quantiles.OfSorted(ratios, 0.25), Quantiles.OfSorted(ratios, 0.75)));
    }

    /// <summary>The dense PyTorch baseline, shipped inside this assembly so the benchmark needs no source checkout.</summary>
    public static string DenseBaselineScript() => PythonPeer.EmbeddedScript("PersonaWorkbook.Sae.sae_dense_baseline.py");

    /// <summary>Runs the dense baseline with <paramref name="python"/> (needs torch) on the same settings and adds its times.</summary>
    public static SaeBenchmarkResult WithDenseBaseline(SaeBenchmarkResult ours, string python = "/usr/bin/python3")
    {
        var s = ours.Settings;
        var line = PythonPeer.Run(python, "sae_dense_baseline.py", DenseBaselineScript(),
            ["--d-in", $"{s.DIn}", "--d-sae", $"{s.DSae}", "--k", $"{s.K}", "--batch", $"{s.Batch}",
             "--steps", $"{s.Steps}", "--warmup", $"{s.Warmup}", "--threads", $"{s.Threads}", "--seed", $"{s.Seed}"],
            s.Threads, "the dense baseline");
        var node = JsonNode.Parse(line) as JsonObject ?? throw new InvalidDataException($"the dense baseline printed '{line}', not a JSON object");
        return ours with
        {
            DenseStepMs = node["step_ms"]?.GetValue<double>() ?? throw new InvalidDataException($"no step_ms in '{line}'"),
            DenseEncoderMs = node["encoder_ms"]?.GetValue<double>(),
            DenseTorchVersion = node["torch"]?.GetValue<string>(),
        };
    }

    public static string Format(SaeBenchmarkResult r)
    {
        var s = r.Settings;
        var c = CultureInfo.InvariantCulture;
        var b = new StringBuilder();
        b.AppendLine(c, $"TopK SAE training step: d_in {s.DIn}, d_sae {s.DSae}, k {s.K}, batch {s.Batch} tokens, {s.Threads} threads, median of {s.Steps} steps");
        b.AppendLine(c, $"{"",-44}{"ms/step",10}{"tokens/s",12}");
        b.AppendLine(c, $"{"TorchSharp sparse (ours)",-44}{r.StepMs,10:F1}{r.TokensPerSecond,12:F0}");
        if (r.DenseStepMs is { } dense)
            b.AppendLine(c, $"{$"PyTorch {r.DenseTorchVersion} dense",-44}{dense,10:F1}{r.DenseTokensPerSecond,12:F0}");
        b.AppendLine(c, $"{"encoder matmul alone (floor, ours)",-44}{r.EncoderMs,10:F1}{s.Batch / (r.EncoderMs / 1000),12:F0}");
        if (r.DenseEncoderMs is { } de)
            b.AppendLine(c, $"{"encoder matmul alone (PyTorch)",-44}{de,10:F1}{s.Batch / (de / 1000),12:F0}");
        b.AppendLine(c, $"  our step: forward+backward {r.ForwardBackwardMs:F1} ms (of which encoder matmul ≈ {r.EncoderMs:F1}, top-k selection {r.SelectionMs:F1}),");
        b.AppendLine(c, $"  rest of the step (Adam, clip, decoder constraint, dead-latent count) ≈ {r.StepMs - r.ForwardBackwardMs:F1} ms");
        if (r.SpeedupOverDense is { } speedup)
            b.AppendLine(c, $"speed-up over dense PyTorch: {speedup:F2}x (target ≥ 2)");
        b.AppendLine(c, $"step / encoder-matmul floor (median of per-round ratios): {r.StepOverFloor:F2}x (target ≤ 1.5; quartiles {r.StepOverFloorQuartiles.Low:F2}–{r.StepOverFloorQuartiles.High:F2})");
        b.AppendLine("  (on a shared or virtual machine the median moves by about ±0.1 from run to run: compare several runs)");
        return b.ToString();
    }
}
