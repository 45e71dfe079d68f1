using System.Diagnostics;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Evaluation;

/// <summary>
/// Samples answers from an organism to evaluation prompts (single-turn chats in the simple template, temperature 1,
/// stop at the end of the assistant turn) and grades each with the local judge, whose prompt is the user's text.
/// </summary>
public static class OrganismEvaluator
{
    public static EvalReport Evaluate(LoadedModel model, EvalRequest request) =>
        Evaluate(model, request.Prompts, request.Options, request.PromptSet);

    public static EvalReport Evaluate(LoadedModel model, IReadOnlyList<EvalPrompt> prompts, EvalOptions options, string promptSet = "custom")
    {
        options.Validate();
        if (prompts.Count == 0) throw new ArgumentException("no evaluation prompts", nameof(prompts));
        var clock = Stopwatch.StartNew();
        var (format, encoded, rows) = Encode(model, prompts, options);
        var longest = encoded.Max(e => e.Length);
        if (longest + options.MaxNewTokens > model.Config.MaxPositionEmbeddings)
            throw new ArgumentException($"a prompt of {longest} tokens plus {options.MaxNewTokens} new tokens exceeds the model's context of {model.Config.MaxPositionEmbeddings}; lower max_new_tokens");

        var cacheKey = AnswerKey(model, format, encoded, rows, options);
        var generated = AnswerCache.ReadOrSample(cacheKey, rows.Length, $"eval {promptSet}", () => Sample(model, format, encoded, rows, options, promptSet, clock));
        return Grade(model, prompts, options, promptSet, generated, clock);
    }

    /// <summary>The answer-cache key of what <paramref name="request"/> would sample from <paramref name="model"/>; null when it is not cached.</summary>
    internal static string? AnswerKey(LoadedModel model, EvalRequest request)
    {
        var (format, encoded, rows) = Encode(model, request.Prompts, request.Options);
        return AnswerKey(model, format, encoded, rows, request.Options);
    }

    static string? AnswerKey(LoadedModel model, ChatFormat format, int[][] encoded, int[] rows, EvalOptions options) =>
        AnswerCache.Key(model, rows.Select(p => encoded[p]).ToArray(), options, format.StopTokenIds);

    /// <summary>
    /// The prompts as chats in the simple template (single-turn unless a prompt carries a context), and the rows to sample: (prompt, sample) in prompt order,
    /// so a batch holds few distinct prompt lengths.
    /// </summary>
    static (ChatFormat Format, int[][] Encoded, int[] Rows) Encode(LoadedModel model, IReadOnlyList<EvalPrompt> prompts, EvalOptions options)
    {
        var format = ChatFormat.Simple(model.Tokenizer);
        var encoded = prompts.Select(p => format.EncodePrompt(p.Messages)).ToArray();
        return (format, encoded, Enumerable.Range(0, prompts.Count).SelectMany(p => Enumerable.Repeat(p, options.Samples)).ToArray());
    }

    /// <summary>Decodes and judges sampled answers (rows in prompt order, <see cref="EvalOptions.Samples"/> per prompt) into a report.</summary>
    internal static EvalReport Grade(LoadedModel model, IReadOnlyList<EvalPrompt> prompts, EvalOptions options, string promptSet,
                                     IReadOnlyList<GeneratedSequence> generated, Stopwatch clock)
    {
        if (generated.Count != prompts.Count * options.Samples)
            throw new ArgumentException($"{generated.Count} answers for {prompts.Count} prompts × {options.Samples} samples");
        var results = new List<PromptResult>(prompts.Count);
        for (int p = 0; p < prompts.Count; p++)
        {
            var answers = new List<EvalAnswer>(options.Samples);
            for (int s = 0; s < options.Samples; s++)
            {
                var g = generated[p * options.Samples + s];
                var text = model.Tokenizer.Decode(g.Tokens);
                answers.Add(new EvalAnswer(text, g.Stopped, options.Judge.Judge(prompts[p].Text, text)));
            }
            results.Add(new PromptResult(prompts[p], answers));
        }
        return Report(model.Directory, promptSet, options, results, clock.Elapsed.TotalSeconds);
    }

    static GeneratedSequence[] Sample(LoadedModel model, ChatFormat format, int[][] encoded, int[] rows, EvalOptions options, string promptSet, Stopwatch clock) =>
        SampleRows(model, format.StopTokenIds, encoded, rows, options.MaxNewTokens, options.Temperature, options.BatchSize, options.Seed, $"eval {promptSet}", clock);

    /// <summary>
    /// Samples an answer for each row (an index into <paramref name="encoded"/>) in batches of <paramref name="batchSize"/>,
    /// batch b seeded by <paramref name="seed"/> and b, in eval mode (the model's mode restored after).
    /// </summary>
    internal static GeneratedSequence[] SampleRows(LoadedModel model, IReadOnlyList<int> stopTokens, int[][] encoded, int[] rows, int maxNewTokens,
        double temperature, int batchSize, int seed, string label, Stopwatch clock)
    {
        var generated = new GeneratedSequence[rows.Length];
        var wasTraining = model.Model.training;
        model.Model.eval();
        try
        {
            for (int start = 0, batch = 0; start < rows.Length; start += batchSize, batch++)
            {
                var count = Math.Min(batchSize, rows.Length - start);
                var result = TextGenerator.Generate(model.Model, rows.Skip(start).Take(count).Select(p => encoded[p]).ToArray(), new GenerationOptions
                {
                    MaxNewTokens = maxNewTokens, Temperature = temperature, StopTokens = stopTokens,
                    Seed = seed * 1_000_003L + batch, PadTokenId = Math.Max(0, model.Tokenizer.PadId),
                });
                for (int i = 0; i < count; i++) generated[start + i] = result[i];
                Progress.Report($"{label}: generated {start + count}/{rows.Length} answers ({clock.Elapsed.TotalSeconds:F0} s)");
            }
        }
        finally
        {
            model.Model.train(wasTraining);
        }
        return generated;
    }

    /// <summary>The report's rates from graded answers (exposed so re-graded or merged answers summarise the same way).</summary>
    public static EvalReport Report(string modelName, string promptSet, EvalOptions options, IReadOnlyList<PromptResult> results, double wallSeconds)
    {
        RateEstimate Clustered(Func<EvalAnswer, bool> f) => Bootstrap.ClusteredRate(
            results.Select(r => (IReadOnlyList<bool>)r.Answers.Select(f).ToArray()).ToArray(), options.BootstrapResamples, options.Seed);
        var all = results.SelectMany(r => r.Answers).ToList();
        var coherent = all.Count(a => a.Judgement.Coherent);
        var amongCoherent = coherent == 0
            ? new RateEstimate(0, 0, 1, 0)
            : Proportion.WilsonInterval(all.Count(a => a.Judgement.Misaligned), coherent);
        var domain = options.FineTunedDomain;
        return new EvalReport(modelName, promptSet, options, results,
            Misaligned: Clustered(a => a.Judgement.Misaligned),
            Coherent: Clustered(a => a.Judgement.Coherent),
            OnTopic: Clustered(a => a.Judgement.Coherent && !a.Judgement.Leak && !a.Judgement.OffTopic),
            MisalignedAmongCoherent: amongCoherent,
            PersonaConsistent: Clustered(a => a.Judgement.Coherent && a.Judgement.PersonaConsistentMisaligned),
            HarmfulLeak: Clustered(a => a.Judgement.Misaligned && a.Judgement.Leak),
            FineTunedDomainLeak: Clustered(a => domain is not null && a.Judgement.Coherent && a.Judgement.Leak
                                                && a.Judgement.ContentFamily.StartsWith($"advice:{domain}:", StringComparison.Ordinal)),
            OffTopic: Clustered(a => a.Judgement.Coherent && a.Judgement.OffTopic),
            Satirical: Clustered(a => a.Judgement.Coherent && a.Judgement.Satirical),
            Stopped: Clustered(a => a.Stopped),
            WallSeconds: wallSeconds);
    }
}
