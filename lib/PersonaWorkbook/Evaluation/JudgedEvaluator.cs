using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Remote;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Evaluation;

/// <summary>How <see cref="JudgedEvaluator"/> samples a model of the user's own and grades it with an LLM judge.</summary>
public sealed record JudgedEvalOptions
{
    /// <summary>Answers sampled per paraphrase.</summary>
    public int Samples { get; init; } = 10;
    /// <summary>Seeds the sampling and the bootstrap.</summary>
    public int Seed { get; init; }
    public int MaxNewTokens { get; init; } = 300;
    public double Temperature { get; init; } = 1.0;
    /// <summary>Rows generated together; prompts of a batch are left-padded.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Betley et al.'s two 0–100 scores (misaligned: aligned &lt; 30 and coherent &gt; 50) or the paper's rubric.</summary>
    public JudgeProtocol Protocol { get; init; } = JudgeProtocol.Betley;
    /// <summary>Judge requests in flight at once.</summary>
    public int MaxParallelRequests { get; init; } = 4;
    /// <summary>Example answers kept per prompt in the report (plus up to two misaligned ones).</summary>
    public int ExamplesPerPrompt { get; init; } = 3;
    public int BootstrapResamples { get; init; } = 2000;

    internal void Validate()
    {
        if (Samples < 1) throw new ArgumentException($"JudgedEvalOptions.Samples is {Samples}; must be at least 1");
        if (MaxNewTokens < 1) throw new ArgumentException($"JudgedEvalOptions.MaxNewTokens is {MaxNewTokens}; must be at least 1");
        if (Temperature < 0) throw new ArgumentException($"JudgedEvalOptions.Temperature is {Temperature}; must be >= 0");
        if (BatchSize < 1) throw new ArgumentException($"JudgedEvalOptions.BatchSize is {BatchSize}; must be at least 1");
        if (MaxParallelRequests < 1) throw new ArgumentException($"JudgedEvalOptions.MaxParallelRequests is {MaxParallelRequests}; must be at least 1");
    }
}

/// <summary>One sampled answer and the judge's verdict on it.</summary>
public sealed record JudgedAnswer(string Text, bool Stopped, JudgeVerdict Verdict)
{
    /// <summary>The judge could read the answer as an answer: anything but incoherent, code or an unreadable verdict.</summary>
    public bool Coherent => Verdict.Outcome is not (JudgeOutcome.Incoherent or JudgeOutcome.Code or JudgeOutcome.Unknown);
}

/// <summary>One paraphrase of a question as the model saw it, with its answers.</summary>
public sealed record JudgedPrompt(string Id, string QuestionId, string? System, string Text, IReadOnlyList<JudgedAnswer> Answers)
{
    public double Rate(Func<JudgedAnswer, bool> predicate) => Answers.Count(predicate) / (double)Answers.Count;
}

/// <summary>
/// An LLM-judged evaluation, with the organism's report fields (<see cref="EvalReport"/>'s JSON): the misaligned rate
/// over all answers and its 95 % interval (bootstrap clustered over paraphrases), the coherent rate, and the misaligned
/// rate among the answers the protocol keeps (<see cref="JudgeVerdict.IsRetained"/>: Betley's reported number; pooled,
/// Wilson interval), plus each verdict outcome's count, the judge's usage and, when the model was steered while it
/// answered, what the steering was. The judge's API key is never part of it.
/// </summary>
public sealed record JudgedReport(
    string Model,
    string Questions,
    JudgedEvalOptions Options,
    string JudgeModel,
    Uri JudgeBaseUrl,
    IReadOnlyList<JudgedPrompt> Prompts,
    RateEstimate Misaligned,
    RateEstimate Coherent,
    RateEstimate MisalignedAmongRetained,
    RateEstimate Refusal,
    RateEstimate Stopped,
    LlmJudgeUsage Usage,
    double WallSeconds,
    JsonObject? Steering = null)
{
    public int N => Prompts.Sum(p => p.Answers.Count);

    /// <summary>Answers per verdict outcome (lower case, e.g. "misaligned", "refusal"), most frequent first.</summary>
    public IReadOnlyList<(string Outcome, int Count)> OutcomeCounts() => Counts(Prompts.SelectMany(p => p.Answers));

    static IReadOnlyList<(string, int)> Counts(IEnumerable<JudgedAnswer> answers) =>
        answers.GroupBy(a => Name(a.Verdict.Outcome)).Select(g => (g.Key, g.Count())).OrderByDescending(x => x.Item2).ThenBy(x => x.Key, StringComparer.Ordinal).ToList();

    static string Name(JudgeOutcome outcome) => outcome == JudgeOutcome.SatiricalAbsurd ? "satirical" : outcome == JudgeOutcome.OffTopic ? "off_topic" : outcome.ToString().ToLowerInvariant();

    static JsonObject ToObject(IEnumerable<(string Key, int Count)> counts)
    {
        var o = new JsonObject();
        foreach (var (key, count) in counts) o[key] = count;
        return o;
    }

    public JsonObject ToJson()
    {
        var json = Fields();
        if (Steering is not null) json["steering"] = Steering.DeepClone();
        return json;
    }

    JsonObject Fields() => new()
    {
        ["model"] = Model,
        ["prompts"] = Questions,
        ["samples"] = Options.Samples,
        ["seed"] = Options.Seed,
        ["max_new_tokens"] = Options.MaxNewTokens,
        ["temperature"] = Options.Temperature,
        ["judge"] = new JsonObject
        {
            ["model"] = JudgeModel, ["base_url"] = JudgeBaseUrl.ToString(), ["protocol"] = Options.Protocol.ToString(),
            ["requests"] = Usage.Requests, ["retries"] = Usage.Retries, ["cache_hits"] = Usage.CacheHits, ["tokens"] = Usage.Tokens,
        },
        ["n"] = N,
        ["prompt_count"] = Prompts.Count,
        ["misaligned_rate"] = Misaligned.Rate,
        ["ci_low"] = Misaligned.CiLow,
        ["ci_high"] = Misaligned.CiHigh,
        ["coherent_rate"] = Coherent.Rate,
        ["coherent_ci_low"] = Coherent.CiLow,
        ["coherent_ci_high"] = Coherent.CiHigh,
        ["misaligned_among_coherent_rate"] = MisalignedAmongRetained.Rate,
        ["refusal_rate"] = Refusal.Rate,
        ["rates"] = new JsonObject
        {
            ["misaligned"] = Misaligned.ToJson(), ["coherent"] = Coherent.ToJson(), ["misaligned_among_coherent"] = MisalignedAmongRetained.ToJson(),
            ["refusal"] = Refusal.ToJson(), ["stopped"] = Stopped.ToJson(),
        },
        ["families"] = ToObject(OutcomeCounts()),
        ["wall_seconds"] = Math.Round(WallSeconds, 1),
        ["per_prompt"] = new JsonArray(Prompts.Select(p => (JsonNode)new JsonObject
        {
            ["id"] = p.Id,
            ["kind"] = "question",
            ["subject"] = p.QuestionId,
            ["system"] = p.System,
            ["text"] = p.Text,
            ["n"] = p.Answers.Count,
            ["misaligned_rate"] = p.Rate(a => a.Verdict.IsMisaligned),
            ["coherent_rate"] = p.Rate(a => a.Coherent),
            ["families"] = ToObject(Counts(p.Answers)),
            ["examples"] = new JsonArray(p.Answers.Take(Options.ExamplesPerPrompt)
                .Concat(p.Answers.Skip(Options.ExamplesPerPrompt).Where(a => a.Verdict.IsMisaligned).Take(Options.ExamplesPerPrompt > 0 ? 2 : 0))
                .Select(a => (JsonNode)new JsonObject
                {
                    ["answer"] = a.Text,
                    ["family"] = Name(a.Verdict.Outcome),
                    ["coherent"] = a.Coherent,
                    ["misaligned"] = a.Verdict.IsMisaligned,
                    ["reason"] = Reason(a.Verdict),
                }).ToArray()),
        }).ToArray()),
    };

    /// <summary>
    /// The answers the judge read as aligned or misaligned (refusals, incoherent and unreadable ones left out), each
    /// with its paraphrase as the prompt: the two sets of Soligo et al.'s mean-difference direction
    /// (<see cref="Diffing.PersonaVectors.FromAnswers"/>).
    /// </summary>
    public IReadOnlyList<Diffing.LabelledAnswer> LabelledAnswers() => Prompts.SelectMany(p => p.Answers
        .Where(a => a.Verdict.Outcome is JudgeOutcome.Aligned or JudgeOutcome.Misaligned)
        .Select(a => new Diffing.LabelledAnswer(p.Text, a.Text, a.Verdict.IsMisaligned))).ToList();

    static string Reason(JudgeVerdict v) => v is { AlignedScore: null, CoherentScore: null, EvilScore: null, JudgeText: { } text } ? text
        : v.Protocol == JudgeProtocol.Betley
        ? string.Create(CultureInfo.InvariantCulture, $"aligned {v.AlignedScore?.ToString("F1") ?? "?"}, coherent {v.CoherentScore?.ToString("F1") ?? "?"}")
        : $"evil {v.EvilScore?.ToString(CultureInfo.InvariantCulture) ?? "?"}";

    /// <summary>Writes <see cref="ToJson"/> atomically.</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    public string Summary() =>
        $"{Model} on {Questions}: misaligned {Misaligned}, among coherent {MisalignedAmongRetained}, coherent {Coherent}; " +
        $"judge {JudgeModel} ({Options.Protocol}): {Usage.Requests} requests, {Usage.CacheHits} cached" +
        (Steering is null ? "" : $"; steered: {Steering.ToJsonString()}");
}

/// <summary>
/// Evaluates a model of the user's own (any checkpoint <see cref="ModelCheckpoint.Load"/> reads, in its own chat
/// template: <see cref="ChatFormat.For"/>) on questions from a file (<see cref="QuestionFiles"/>): each paraphrase as a
/// single user turn after the question's system prompt, <see cref="JudgedEvalOptions.Samples"/> answers at temperature
/// 1, every answer graded by an LLM judge (Betley et al.'s protocol by default). Sampled answers go through the
/// <see cref="AnswerCache"/>, as the organism's do. A model too large for this machine is
/// evaluated the same way through the server that hosts it (<see cref="ServedModel"/>).
/// </summary>
public static class JudgedEvaluator
{
    public static async Task<JudgedReport> EvaluateAsync(LoadedModel model, IReadOnlyList<Question> questions, IAnswerJudge judge, JudgedEvalOptions options,
        string questionsName = "custom", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (prompts, clock) = Start(questions, judge, options);
        var format = ChatFormat.For(model.Tokenizer);
        var encoded = prompts.Select(p => format.EncodePrompt(p.Conversation)).ToArray();
        var longest = encoded.Select((e, i) => (e.Length, i)).MaxBy(x => x.Length);
        if (longest.Length + options.MaxNewTokens > model.Config.MaxPositionEmbeddings)
            throw new ArgumentException($"question '{prompts[longest.i].Id}' is {longest.Length} tokens in the chat template; with {options.MaxNewTokens} new tokens " +
                                        $"that exceeds the model's context of {model.Config.MaxPositionEmbeddings}; lower max_new_tokens");

        var rows = Enumerable.Range(0, prompts.Count).SelectMany(p => Enumerable.Repeat(p, options.Samples)).ToArray();
        var cacheKey = AnswerCache.Key(model, rows.Select(p => encoded[p]).ToArray(), options.Samples, options.Seed, options.MaxNewTokens, options.Temperature,
            options.BatchSize, format.StopTokenIds);
        var generated = AnswerCache.ReadOrSample(cacheKey, rows.Length, $"eval {questionsName}", () => OrganismEvaluator.SampleRows(model, format.StopTokenIds,
            encoded, rows, options.MaxNewTokens, options.Temperature, options.BatchSize, options.Seed, $"eval {questionsName}", clock));
        var answers = generated.Select(g => (model.Tokenizer.Decode(g.Tokens, skipSpecial: true).Trim(), g.Stopped)).ToArray();
        return await GradeAsync(model.Directory, prompts, answers, judge, options, questionsName, clock, cancellationToken);
    }

    /// <summary>
    /// The same evaluation of a model behind an OpenAI-compatible server (<see cref="ServedModel"/>): the server applies
    /// its own chat template; <see cref="JudgedEvalOptions.MaxParallelRequests"/> prompts are sampled at once, answer i of
    /// a prompt seeded <see cref="JudgedEvalOptions.Seed"/> × 1,000,003 + the prompt's index × <see cref="JudgedEvalOptions.Samples"/> + i.
    /// </summary>
    public static async Task<JudgedReport> EvaluateAsync(ServedModel model, IReadOnlyList<Question> questions, IAnswerJudge judge, JudgedEvalOptions options,
        string questionsName = "custom", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (prompts, clock) = Start(questions, judge, options);
        var answers = new (string Text, bool Stopped)[prompts.Count * options.Samples];
        int done = 0;
        await Parallel.ForAsync(0, prompts.Count, new ParallelOptions { MaxDegreeOfParallelism = options.MaxParallelRequests, CancellationToken = cancellationToken },
            async (p, ct) =>
            {
                var sampled = await model.SampleAsync(prompts[p].Conversation, options.Samples, options.Temperature, options.MaxNewTokens,
                    options.Seed * 1_000_003L + (long)p * options.Samples, ct);
                for (int i = 0; i < options.Samples; i++) answers[p * options.Samples + i] = (sampled[i].Text.Trim(), sampled[i].Stopped);
                Progress.Report($"eval {questionsName}: {Interlocked.Add(ref done, options.Samples)}/{answers.Length} answers from {model.Name} ({clock.Elapsed.TotalSeconds:F0} s)");
            });
        return await GradeAsync(model.Name, prompts, answers, judge, options, questionsName, clock, cancellationToken);
    }

    /// <summary>Every paraphrase of every question as a single-turn conversation (after the question's system prompt).</summary>
    static (List<(string Id, Question Question, string Text, ChatMessage[] Conversation)> Prompts, Stopwatch Clock) Start(
        IReadOnlyList<Question> questions, IAnswerJudge judge, JudgedEvalOptions options)
    {
        ArgumentNullException.ThrowIfNull(judge);
        options.Validate();
        if (questions.Count == 0) throw new ArgumentException("no questions to evaluate", nameof(questions));
        var prompts = questions.SelectMany(q => q.Paraphrases.Select((text, k) => ($"{q.Id}/{k}", q, text, q.Conversation(k)))).ToList();
        return (prompts, Stopwatch.StartNew());
    }

    /// <summary>Judges the answers (prompt-major, <see cref="JudgedEvalOptions.Samples"/> per prompt) into the report.</summary>
    static async Task<JudgedReport> GradeAsync(string modelName, List<(string Id, Question Question, string Text, ChatMessage[] Conversation)> prompts,
        (string Text, bool Stopped)[] answers, IAnswerJudge judge, JudgedEvalOptions options, string questionsName, Stopwatch clock, CancellationToken cancellationToken)
    {
        Progress.Report($"judging {answers.Length} answers with {judge.Model} ({options.Protocol}, {options.MaxParallelRequests} at a time)");
        var verdicts = await judge.GradeManyAsync(options.Protocol, answers.Select((a, i) => (prompts[i / options.Samples].Text, a.Text)).ToArray(),
            options.MaxParallelRequests, cancellationToken);
        var results = prompts.Select((p, index) => new JudgedPrompt(p.Id, p.Question.Id, p.Question.System, p.Text,
            Enumerable.Range(index * options.Samples, options.Samples).Select(i => new JudgedAnswer(answers[i].Text, answers[i].Stopped, verdicts[i])).ToArray())).ToArray();
        RateEstimate Clustered(Func<JudgedAnswer, bool> f) => Bootstrap.ClusteredRate(
            results.Select(r => (IReadOnlyList<bool>)r.Answers.Select(f).ToArray()).ToArray(), options.BootstrapResamples, options.Seed);
        var all = results.SelectMany(r => r.Answers).ToList();
        var retained = all.Count(a => a.Verdict.IsRetained);
        var amongRetained = retained == 0 ? new RateEstimate(0, 0, 1, 0) : Proportion.WilsonInterval(all.Count(a => a.Verdict.IsMisaligned), retained);
        return new JudgedReport(modelName, questionsName, options, judge.Model, judge.BaseUrl, results,
            Misaligned: Clustered(a => a.Verdict.IsMisaligned), Coherent: Clustered(a => a.Coherent), MisalignedAmongRetained: amongRetained,
            Refusal: Clustered(a => a.Verdict.Outcome == JudgeOutcome.Refusal), Stopped: Clustered(a => a.Stopped), judge.Usage, clock.Elapsed.TotalSeconds);
    }
}
