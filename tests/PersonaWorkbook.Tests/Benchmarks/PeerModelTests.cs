using System.Text.Json;
using PersonaWorkbook.Benchmarks;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Benchmarks;

/// <summary>The benchmark's PyTorch peer must be the same architecture, or its ratios compare different work.</summary>
public class PeerModelTests
{
    const string Driver = """
        import json, sys
        import torch
        sys.path.insert(0, sys.argv[1])
        import peer_llama
        model = peer_llama.load_checkpoint(sys.argv[1])
        ids = torch.tensor(json.loads(sys.argv[2]))
        with torch.no_grad():
            logits, _ = model(ids)
        cached = peer_llama.generate(model, ids, 6, True)[:, ids.shape[1]:]
        uncached = peer_llama.generate(model, ids, 6, False)[:, ids.shape[1]:]
        print(json.dumps({"logits": logits.tolist(), "cached": cached.tolist(), "uncached": uncached.tolist()}))
        """;

    /// <summary>Llama, and Qwen2 with its q/k/v biases and tied embeddings (the biases set non-zero, so they count).</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PeerComputesTheSameLogitsAndGreedyTokens(bool qwen)
    {
        using var dir = new TempDirectory();
        using var model = TinyModels.Build(qwen ? TinyModels.Qwen2() : TinyModels.Llama());
        if (qwen)
            using (no_grad())
                foreach (var (name, p) in model.named_parameters().Where(p => p.name.EndsWith(".bias")))
                    p.copy_(randn(p.shape) * 0.5);
        File.WriteAllText(dir.File("peer_llama.py"), ModelBenchmark.PeerScript());
        model.Config.Save(dir.File("config.json"));
        SafeTensors.Save(dir.File("model.safetensors"), model.state_dict());
        long[][] ids = [[1, 5, 9, 2, 7, 3], [4, 8, 15, 16, 23, 42]];

        var output = JsonDocument.Parse(SystemPython.Run(Driver, dir.Path, JsonSerializer.Serialize(ids))).RootElement;

        using var input = tensor(ids.SelectMany(r => r).ToArray(), [2, 6]);
        using var ours = model.forward(input);
        var theirs = output.GetProperty("logits").EnumerateArray().SelectMany(b => b.EnumerateArray().SelectMany(t => t.EnumerateArray().Select(v => v.GetSingle()))).ToArray();
        using var peer = tensor(theirs, ours.shape);
        Assert.True(allclose(ours, peer, rtol: 0, atol: 1e-5), $"max |Δlogit| {(ours - peer).abs().max().item<float>()}");

        var generated = TextGenerator.Generate(model, ids.Select(r => r.Select(t => (int)t).ToArray()).ToArray(),
            new GenerationOptions { MaxNewTokens = 6, Temperature = 0 });
        foreach (var key in new[] { "cached", "uncached" })
        {
            var peerTokens = output.GetProperty(key).EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
            Assert.Equal(generated.Select(g => g.Tokens), peerTokens);
        }
    }

    const string AnswersDriver = """
        import json, sys
        import torch
        sys.path.insert(0, sys.argv[1])
        import peer_llama
        model = peer_llama.load_checkpoint(sys.argv[1])
        ids, real = torch.tensor(json.loads(sys.argv[2])), torch.tensor(json.loads(sys.argv[3])).bool()
        with torch.no_grad():
            logits, _ = model(ids, None, (real.long().cumsum(1) - 1).clamp(min=0), real)
        job = {"prompts": [[1, 5, 9], [4, 8]], "samples": 3, "seed": 0, "max_new_tokens": 5, "temperature": 1.0,
               "stop": [2], "pad": 0, "batch": 4}
        answers, stopped = peer_llama.sample_answers(model, job)
        print(json.dumps({"logits": logits.tolist(), "answers": answers, "stopped": stopped}))
        """;

    /// <summary>`bench answers` has the peer sample left-padded batches from a checkpoint: same logits as ours on them.</summary>
    [Fact]
    public void PeerLoadsACheckpointAndSamplesLeftPaddedRowsLikeOurs()
    {
        using var dir = new TempDirectory();
        using var model = TinyModels.Build(TinyModels.Llama(tied: true));
        File.WriteAllText(dir.File("peer_llama.py"), ModelBenchmark.PeerScript());
        model.Config.Save(dir.File("config.json"));
        SafeTensors.Save(dir.File("model.safetensors"), model.state_dict().Where(kv => kv.Key != "lm_head.weight").ToDictionary());
        long[][] ids = [[0, 0, 7, 8, 9], [1, 5, 9, 2, 7]];
        int[][] real = [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]];

        var output = JsonDocument.Parse(SystemPython.Run(AnswersDriver, dir.Path, JsonSerializer.Serialize(ids), JsonSerializer.Serialize(real))).RootElement;

        using var input = tensor(ids.SelectMany(r => r).ToArray(), [2, 5]);
        using var mask = tensor(real.SelectMany(r => r.Select(v => (long)v)).ToArray(), [2, 5]);
        using var ours = model.Forward(input, mask);
        var theirs = output.GetProperty("logits").EnumerateArray().SelectMany(b => b.EnumerateArray().SelectMany(t => t.EnumerateArray().Select(v => v.GetSingle()))).ToArray();
        using var peer = tensor(theirs, ours.shape);
        Assert.True(allclose(ours[0, 2..], peer[0, 2..], rtol: 0, atol: 1e-5) && allclose(ours[1], peer[1], rtol: 0, atol: 1e-5),
            $"max |Δlogit| on real tokens {Math.Max((ours[0, 2..] - peer[0, 2..]).abs().max().item<float>(), (ours[1] - peer[1]).abs().max().item<float>())}");

        var answers = output.GetProperty("answers").EnumerateArray().Select(a => a.EnumerateArray().Select(t => t.GetInt32()).ToArray()).ToArray();
        var stopped = output.GetProperty("stopped").EnumerateArray().Select(b => b.GetBoolean()).ToArray();
        Assert.Equal(6, answers.Length);
        Assert.Equal(6, stopped.Length);
        Assert.All(answers, a => Assert.All(a, t => Assert.InRange(t, 0, model.Config.VocabSize - 1)));
        Assert.All(answers.Zip(stopped), x => Assert.True(x.Second || x.First.Length == 5, "an unstopped answer must run to max_new_tokens"));
        Assert.DoesNotContain(answers.SelectMany(a => a), t => t == 2);   // the stop token ends an answer and is not part of it
    }

    [Fact]
    public void TrainingFlopsFollowTheStatedFormula()
    {
        var c = new PersonaWorkbook.Models.ModelConfig(); // default small config: vocab 2048, d 256, 4 layers, 8 heads
        using var model = new PersonaWorkbook.Models.LlamaForCausalLM(c);
        long n = model.parameters().Sum(p => p.numel());
        Assert.Equal(3_950_848, n);
        // N = 3,950,848 − 2048·256 embedding = 3,426,560; 3·(2N + 2·4·128·256) = 21,345,792.
        Assert.Equal(21_345_792, ModelBenchmark.TrainingFlopsPerToken(c, n, 128));
    }

    [Fact]
    public void TheReportTakesMediansOfAlternatingRunsAndEachRunsOwnRatio()
    {
        var settings = new BenchmarkSettings();
        BenchmarkResult Run(string runtime, double train, double cached, double matmul) =>
            new(runtime, 3_950_848, train, cached, cached, matmul, 1.0, "blas");
        // Run 2's peer was slow; the median of per-run ratios (1.0, 2.0, 1.1) is 1.1, not the ratio of medians.
        var ours = new[] { Run("C#", 1000, 100, 200e9), Run("C#", 1000, 100, 200e9), Run("C#", 1100, 100, 200e9) };
        var peer = new[] { Run("Py", 1000, 100, 250e9), Run("Py", 500, 50, 250e9), Run("Py", 1000, 100, 280e9) };
        var report = ModelBenchmark.FormatReport(settings, ours, peer);
        var training = report.Split('\n').Single(l => l.StartsWith("training tokens/s"));
        Assert.Contains("1.10  1.00 2.00 1.10", training);
        // The denominator is the best matmul rate either side reached in the invocation: 1,000 tokens/s × 21.35 MFLOP is 7.6 % of 280 GFLOP/s.
        var best = report.Split('\n').Single(l => l.StartsWith("training FLOP/s ÷ best matmul rate"));
        Assert.Contains("7.6 %", best);
        Assert.Contains("(best 280.0 GFLOP/s)", best);
        Assert.Throws<ArgumentException>(() => ModelBenchmark.FormatReport(settings, ours, peer[..2]));
    }
}
