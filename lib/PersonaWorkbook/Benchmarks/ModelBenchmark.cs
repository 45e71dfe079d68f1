using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Models;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.Training;
using static TorchSharp.torch;

namespace PersonaWorkbook.Benchmarks;

/// <summary>What the foundation benchmark runs; the PyTorch peer gets the same values.</summary>
public sealed record BenchmarkSettings
{
    /// <summary>The default small configuration (about 4 M parameters, context 128).</summary>
    public ModelConfig Config { get; init; } = new();
    public int Steps { get; init; } = 20;
    /// <summary>Untimed training steps first (allocator and thread-pool warm-up).</summary>
    public int WarmupSteps { get; init; } = 3;
    public int BatchSize { get; init; } = 8;
    public int ContextLength { get; init; } = 128;
    public int PromptLength { get; init; } = 16;
    public int NewTokens { get; init; } = 112;
    public int Threads { get; init; } = 2;
    public int Seed { get; init; }
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Side of the square float32 matrices timed for the reference matmul rate.</summary>
    public int MatmulSize { get; init; } = 1024;
}

/// <summary>Throughput of one implementation (tokens per second; FLOP/s for the reference matmul).</summary>
public sealed record BenchmarkResult(
    string Runtime,
    long Parameters,
    double TrainTokensPerSecond,
    double GenerationCachedTokensPerSecond,
    double GenerationUncachedTokensPerSecond,
    double MatmulFlopsPerSecond,
    double FinalLoss,
    string Blas);

/// <summary>
/// Trains the default small Llama for a fixed number of steps on random tokens and samples from it greedily with and
/// without the KV cache, here (TorchSharp) and in the same architecture written in PyTorch (peer_llama.py).
/// </summary>
public static class ModelBenchmark
{
    /// <summary>
    /// Training FLOPs per token, Kaplan et al.'s estimate: 3 × (2·N + 2·L·T·d) with N the parameters that take part
    /// in matrix products (all but the embedding table, which is a lookup) and 2·L·T·d for the attention scores and
    /// their weighted sum over a context of T; backward costs twice the forward pass.
    /// </summary>
    public static double TrainingFlopsPerToken(ModelConfig c, long parameters, int contextLength)
    {
        long matmulParams = parameters - (long)c.VocabSize * c.HiddenSize;
        double attention = 2.0 * c.NumHiddenLayers * contextLength * c.NumAttentionHeads * c.HeadDim;
        return 3 * (2.0 * matmulParams + attention);
    }

    public static BenchmarkResult RunTorchSharp(BenchmarkSettings s)
    {
        set_num_threads(s.Threads);
        manual_seed(s.Seed);
        var matmul = MatmulFlopsPerSecond(s.MatmulSize);
        using var model = new LlamaForCausalLM(s.Config);
        long parameters = model.NumParameters();

        // One random document long enough for every step: the packed windows are full, so no padding is involved.
        var random = new Random(s.Seed);
        int totalSteps = s.WarmupSteps + s.Steps;
        var tokens = Enumerable.Range(0, totalSteps * s.BatchSize * s.ContextLength).Select(_ => random.Next(s.Config.VocabSize)).ToArray();
        var data = new PackedDataset([tokens], s.ContextLength, separatorTokenId: 0);
        var log = new Trainer(model, new TrainerOptions
        {
            LearningRate = s.LearningRate, MaxSteps = totalSteps, BatchSize = s.BatchSize, Schedule = ScheduleKind.Cosine,
            ClipNorm = 1.0, Seed = s.Seed, LogEvery = 0,
        }).Train(data);
        var timed = log.Steps.Skip(s.WarmupSteps).ToArray();
        double trainSeconds = log.Steps[^1].ElapsedSeconds - (s.WarmupSteps > 0 ? log.Steps[s.WarmupSteps - 1].ElapsedSeconds : 0);
        double trainTps = timed.Sum(t => t.Tokens) / trainSeconds;

        model.eval();
        var prompts = Enumerable.Range(0, s.BatchSize)
            .Select(_ => Enumerable.Range(0, s.PromptLength).Select(_ => random.Next(s.Config.VocabSize)).ToArray()).ToArray();
        double Generate(bool cache)
        {
            var options = new GenerationOptions { MaxNewTokens = s.NewTokens, Temperature = 0, UseKvCache = cache };
            TextGenerator.Generate(model, prompts, options with { MaxNewTokens = 4 });
            var clock = Stopwatch.StartNew();
            var output = TextGenerator.Generate(model, prompts, options);
            var seconds = clock.Elapsed.TotalSeconds;
            return output.Sum(o => o.Tokens.Length) / seconds;
        }
        return new BenchmarkResult($"TorchSharp {typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(3)}", parameters,
            trainTps, Generate(cache: true), Generate(cache: false), matmul, log.Steps[^1].Loss, "libtorch-cpu 2.10 NuGet build (oneMKL linked into libtorch_cpu.so)");
    }

    /// <summary>float32 (n × n) · (n × n) products per second × 2n³, best of 5 rounds of 4 (the machine may be shared).</summary>
    public static double MatmulFlopsPerSecond(int n)
    {
        using var scope = NewDisposeScope();
        var a = randn(n, n);
        var b = randn(n, n);
        for (int i = 0; i < 3; i++) matmul(a, b).Dispose();
        double best = 0;
        for (int round = 0; round < 5; round++)
        {
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < 4; i++) matmul(a, b).Dispose();
            best = Math.Max(best, 2.0 * n * n * n * 4 / clock.Elapsed.TotalSeconds);
        }
        return best;
    }

    /// <summary>The peer script, shipped inside this assembly so the benchmark needs no source checkout.</summary>
    public static string PeerScript() => PythonPeer.EmbeddedScript("PersonaWorkbook.Benchmarks.peer_llama.py");

    /// <summary>Runs peer_llama.py with <paramref name="python"/> on the same settings and parses its JSON line.</summary>
    public static BenchmarkResult RunPeer(BenchmarkSettings s, string python = "/usr/bin/python3")
    {
        var dir = Directory.CreateTempSubdirectory("workbook-bench-").FullName;
        try
        {
            var config = Path.Combine(dir, "config.json");
            s.Config.Save(config);
            var line = PythonPeer.Run(python, "peer_llama.py", PeerScript(),
            [
                "--config", config, "--steps", $"{s.Steps}", "--warmup", $"{s.WarmupSteps}", "--batch", $"{s.BatchSize}",
                "--context", $"{s.ContextLength}", "--prompt", $"{s.PromptLength}", "--new", $"{s.NewTokens}",
                "--threads", $"{s.Threads}", "--seed", $"{s.Seed}", "--lr", s.LearningRate.ToString("R", CultureInfo.InvariantCulture),
            ], s.Threads, "the PyTorch peer");
            return ParsePeer(line);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    static BenchmarkResult ParsePeer(string json)
    {
        var node = PythonPeer.ParseJson(json, "the PyTorch peer");
        T Field<T>(string name) => node[name] is { } v ? v.GetValue<T>() : throw new InvalidDataException($"the PyTorch peer's output lacks '{name}': {json}");
        return new BenchmarkResult(Field<string>("runtime"), Field<long>("parameters"), Field<double>("train_tokens_per_s"),
            Field<double>("gen_cache_tokens_per_s"), Field<double>("gen_nocache_tokens_per_s"), Field<double>("matmul_flops_per_s"),
            Field<double>("final_loss"), Field<string>("blas"));
    }

    /// <summary>
    /// The side-by-side table printed by <c>workbook bench model</c> over runs that alternated the two sides (ours,
    /// peer, ours, peer, ...): each column is the median over runs, the ratio is the median of the runs' own ratios
    /// (each taken minutes apart from the other side, not across the whole invocation), and every run's ratios follow.
    /// </summary>
    public static string FormatReport(BenchmarkSettings s, IReadOnlyList<BenchmarkResult> ours, IReadOnlyList<BenchmarkResult> peer)
    {
        if (ours.Count == 0 || ours.Count != peer.Count) throw new ArgumentException($"need the same positive number of runs of both sides, got {ours.Count} and {peer.Count}");
        var c = s.Config;
        var flopsPerToken = TrainingFlopsPerToken(c, ours[0].Parameters, s.ContextLength);
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine($"Llama {ours[0].Parameters / 1e6:F2} M parameters (d={c.HiddenSize}, L={c.NumHiddenLayers}, heads {c.NumAttentionHeads}/{c.NumKvHeads} kv, " +
                    $"ffn {c.IntermediateSize}, vocab {c.VocabSize}), context {s.ContextLength}, batch {s.BatchSize}, {s.Threads} threads, float32, CPU");
        w.WriteLine($"training: {s.Steps} timed steps after {s.WarmupSteps} warm-up (AdamW, cosine, clip 1.0); " +
                    $"generation: {s.BatchSize} prompts × {s.PromptLength} tokens + {s.NewTokens} new, greedy; " +
                    $"{ours.Count} run{(ours.Count == 1 ? "" : "s")} of each side, alternating, medians");
        w.WriteLine();
        w.WriteLine($"{"",-34}{"C# (" + ours[0].Runtime + ")",24}{peer[0].Runtime,20}{"C#/PyTorch",12}  runs");
        var perRun = ours.Zip(peer).ToArray();
        void Row(string name, Func<BenchmarkResult, double> value, string format)
        {
            var ratios = perRun.Select(r => value(r.First) / value(r.Second)).ToArray();
            string F(double x) => x.ToString(format, CultureInfo.InvariantCulture);
            w.WriteLine($"{name,-34}{F(Quantiles.Median(ours.Select(value))),24}{F(Quantiles.Median(peer.Select(value))),20}" +
                        $"{Quantiles.Median(ratios),12:F2}  {string.Join(" ", ratios.Select(r => r.ToString("F2", CultureInfo.InvariantCulture)))}");
        }
        Row("training tokens/s", r => r.TrainTokensPerSecond, "N0");
        Row("generation tokens/s, KV cache", r => r.GenerationCachedTokensPerSecond, "N1");
        Row("generation tokens/s, no cache", r => r.GenerationUncachedTokensPerSecond, "N1");
        Row($"float32 matmul {s.MatmulSize}² GFLOP/s, best", r => r.MatmulFlopsPerSecond / 1e9, "F1");
        Row("training GFLOP/s (achieved)", r => flopsPerToken * r.TrainTokensPerSecond / 1e9, "F2");
        // Against the best matmul rate either library reached in the invocation, as well as each side's own.
        var bestMatmul = ours.Concat(peer).Max(r => r.MatmulFlopsPerSecond);
        double Share(IEnumerable<BenchmarkResult> runs, Func<BenchmarkResult, double> rate) => Quantiles.Median(runs.Select(r => flopsPerToken * r.TrainTokensPerSecond / rate(r)));
        w.WriteLine($"{"training FLOP/s ÷ own matmul rate",-34}{Share(ours, r => r.MatmulFlopsPerSecond),24:P1}{Share(peer, r => r.MatmulFlopsPerSecond),20:P1}");
        w.WriteLine($"{"training FLOP/s ÷ best matmul rate",-34}{Share(ours, _ => bestMatmul),24:P1}{Share(peer, _ => bestMatmul),20:P1}  (best {bestMatmul / 1e9:F1} GFLOP/s)");
        w.WriteLine($"{"final training loss",-34}{ours[^1].FinalLoss,24:F3}{peer[^1].FinalLoss,20:F3}");
        w.WriteLine();
        w.WriteLine($"FLOPs per training token = 3·(2·N + 2·L·T·d_attn) = {flopsPerToken / 1e6:F1} M, N = {ours[0].Parameters - (long)c.VocabSize * c.HiddenSize:N0} " +
                    "parameters in matrix products (embedding lookup excluded)");
        w.WriteLine($"C# BLAS: {ours[0].Blas}");
        w.WriteLine($"PyTorch BLAS: {peer[0].Blas}");
        return w.ToString();
    }
}
