using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Benchmarks;

/// <summary>One run of the graded-answers benchmark: seconds each side took for the same evaluation.</summary>
/// <param name="OursSeconds">OrganismEvaluator.Evaluate with the answer cache off: sampling, decoding, judging, the report's intervals.</param>
/// <param name="PeerSamplingSeconds">The PyTorch peer sampling the same rows with the same settings (model loaded beforehand).</param>
/// <param name="PeerGradingSeconds">The peer's answers decoded, judged and summarised by the same C# code as ours.</param>
public sealed record AnswerBenchmarkRun(int Answers, double OursSeconds, double PeerSamplingSeconds, double PeerGradingSeconds, string PeerRuntime)
{
    public double OursPerSecond => Answers / OursSeconds;
    public double PeerPerSecond => Answers / (PeerSamplingSeconds + PeerGradingSeconds);
    public double Ratio => OursPerSecond / PeerPerSecond;
}

/// <summary>
/// Graded answers per second, the rate every notebook's evaluation runs at: an organism answers the evaluation views
/// prompts (<see cref="EvalOptions"/> defaults: batch 256, temperature 1, 80 new tokens) and the local judge grades
/// them, here and with the PyTorch peer (peer_llama.py --answers) sampling the same encoded rows in the same batches.
/// </summary>
public static class AnswerBenchmark
{
    public static AnswerBenchmarkRun Run(string modelDirectory, int samples, int threads, string python = "/usr/bin/python3", int seed = 0)
    {
        set_num_threads(threads);
        using var model = ModelCheckpoint.Load(modelDirectory);
        var prompts = EvalPrompts.Views;
        var options = new EvalOptions { Samples = samples, Seed = seed, CacheAnswers = false, ExamplesPerPrompt = 0 };
        var clock = Stopwatch.StartNew();
        var ours = OrganismEvaluator.Evaluate(model, prompts, options, "views");
        var oursSeconds = clock.Elapsed.TotalSeconds;

        var (answers, peerSeconds, runtime) = RunPeer(model, prompts, options, threads, python);
        var grading = Stopwatch.StartNew();
        OrganismEvaluator.Grade(model, prompts, options, "views", answers, grading);
        return new AnswerBenchmarkRun(ours.N, oursSeconds, peerSeconds, grading.Elapsed.TotalSeconds, runtime);
    }

    static (GeneratedSequence[] Answers, double Seconds, string Runtime) RunPeer(LoadedModel model, IReadOnlyList<EvalPrompt> prompts, EvalOptions options, int threads, string python)
    {
        var format = ChatFormat.Simple(model.Tokenizer);
        var dir = Directory.CreateTempSubdirectory("workbook-bench-answers-").FullName;
        try
        {
            var job = Path.Combine(dir, "job.json");
            File.WriteAllText(job, new JsonObject
            {
                ["checkpoint"] = Path.GetFullPath(model.Directory),
                ["prompts"] = new JsonArray(prompts.Select(p => (JsonNode)new JsonArray(
                    format.EncodePrompt([ChatMessage.User(p.Text)]).Select(t => (JsonNode)t).ToArray())).ToArray()),
                ["samples"] = options.Samples, ["seed"] = options.Seed, ["max_new_tokens"] = options.MaxNewTokens,
                ["temperature"] = options.Temperature, ["batch"] = options.BatchSize,
                ["stop"] = new JsonArray(format.StopTokenIds.Select(t => (JsonNode)t).ToArray()), ["pad"] = Math.Max(0, model.Tokenizer.PadId),
            }.ToJsonString());
            var line = PythonPeer.Run(python, "peer_llama.py", ModelBenchmark.PeerScript(),
                ["--answers", job, "--threads", threads.ToString(CultureInfo.InvariantCulture)], threads, "the PyTorch peer");
            var node = PythonPeer.ParseJson(line, "the PyTorch peer");
            var stopped = node["stopped"]?.AsArray() ?? throw new InvalidDataException("the PyTorch peer's output lacks 'stopped'");
            var answers = node["answers"]?.AsArray().Select((a, i) => new GeneratedSequence(a!.AsArray().Select(t => (int)t!).ToArray(),
                (bool)stopped[i]!)).ToArray() ?? throw new InvalidDataException("the PyTorch peer's output lacks 'answers'");
            if (answers.Length != prompts.Count * options.Samples)
                throw new InvalidDataException($"the PyTorch peer returned {answers.Length} answers, expected {prompts.Count * options.Samples}");
            return (answers, node["seconds"]!.GetValue<double>(), node["runtime"]!.GetValue<string>());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Each run's rates and the medians, as printed by <c>workbook bench answers</c>.</summary>
    public static string FormatReport(string modelDirectory, int threads, IReadOnlyList<AnswerBenchmarkRun> runs)
    {
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine($"graded answers per second: {runs[0].Answers} answers to the views prompts from {modelDirectory}, batch 256, " +
                    $"temperature 1, 80 new tokens, {threads} threads; peer: {runs[0].PeerRuntime} sampling, graded by the same C# judge");
        w.WriteLine($"{"run",-8}{"C# answers/s",16}{"PyTorch answers/s",20}{"(sampling s + grading s)",28}{"C#/PyTorch",12}");
        for (int i = 0; i < runs.Count; i++)
        {
            var r = runs[i];
            w.WriteLine($"{i + 1,-8}{r.OursPerSecond,16:F1}{r.PeerPerSecond,20:F1}{$"({r.PeerSamplingSeconds:F2} + {r.PeerGradingSeconds:F2})",28}{r.Ratio,12:F2}");
        }
        w.WriteLine($"{"median",-8}{Quantiles.Median(runs.Select(r => r.OursPerSecond)),16:F1}{Quantiles.Median(runs.Select(r => r.PeerPerSecond)),20:F1}{"",28}{Quantiles.Median(runs.Select(r => r.Ratio)),12:F2}");
        return w.ToString();
    }
}
