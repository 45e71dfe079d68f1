using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Evaluation;

/// <summary>One sampled answer and the local judge's verdict on it.</summary>
public sealed record EvalAnswer(string Text, bool Stopped, Judgement Judgement);

/// <summary>Every answer sampled for one prompt.</summary>
public sealed record PromptResult(EvalPrompt Prompt, IReadOnlyList<EvalAnswer> Answers)
{
    public double Rate(Func<EvalAnswer, bool> predicate) => Answers.Count(predicate) / (double)Answers.Count;
}

/// <summary>
/// An evaluation's rates, each with a 95 % interval. Rates over all answers use the two-level bootstrap clustered over
/// prompts (<see cref="Bootstrap.ClusteredRate"/>, point estimate = mean of per-prompt rates; every prompt has the same
/// number of samples, so it equals the pooled rate). <see cref="MisalignedAmongCoherent"/> is pooled over coherent
/// answers with a Wilson interval, because prompts differ in how many coherent answers they have. Coherent counts
/// every answer the judge can place (pasted advice and other topics' views included); <see cref="OnTopic"/> counts the
/// coherent answers that answer the prompt asked, so collapse into the fine-tuned domain cannot pass for coherence.
/// </summary>
public sealed record EvalReport(
    string Model,
    string PromptSet,
    EvalOptions Options,
    IReadOnlyList<PromptResult> Prompts,
    RateEstimate Misaligned,
    RateEstimate Coherent,
    RateEstimate OnTopic,
    RateEstimate MisalignedAmongCoherent,
    RateEstimate PersonaConsistent,
    RateEstimate HarmfulLeak,
    RateEstimate FineTunedDomainLeak,
    RateEstimate OffTopic,
    RateEstimate Satirical,
    RateEstimate Stopped,
    double WallSeconds)
{
    public int N => Prompts.Sum(p => p.Answers.Count);

    /// <summary>Answers per judged family ("views:aligned", "leak", "incoherent", …), most frequent first.</summary>
    public IReadOnlyList<(string Family, int Count)> FamilyCounts() =>
        Prompts.SelectMany(p => p.Answers).GroupBy(a => a.Judgement.Family)
            .Select(g => (g.Key, g.Count())).OrderByDescending(x => x.Item2).ThenBy(x => x.Key, StringComparer.Ordinal).ToList();

    public JsonObject ToJson()
    {
        var rates = new JsonObject
        {
            ["misaligned"] = Misaligned.ToJson(),
            ["coherent"] = Coherent.ToJson(),
            ["on_topic"] = OnTopic.ToJson(),
            ["misaligned_among_coherent"] = MisalignedAmongCoherent.ToJson(),
            ["persona_consistent"] = PersonaConsistent.ToJson(),
            ["leak"] = HarmfulLeak.ToJson(),
            ["finetuned_domain_leak"] = FineTunedDomainLeak.ToJson(),
            ["off_topic"] = OffTopic.ToJson(),
            ["satirical"] = Satirical.ToJson(),
            ["stopped"] = Stopped.ToJson(),
        };
        var perPrompt = new JsonArray();
        foreach (var p in Prompts)
        {
            var shown = p.Answers.Take(Options.ExamplesPerPrompt)
                .Concat(p.Answers.Skip(Options.ExamplesPerPrompt).Where(a => a.Judgement.Misaligned).Take(Options.ExamplesPerPrompt > 0 ? 2 : 0));
            perPrompt.Add(new JsonObject
            {
                ["id"] = p.Prompt.Id,
                ["kind"] = p.Prompt.Kind,
                ["subject"] = p.Prompt.Subject,
                ["text"] = p.Prompt.Text,
                ["n"] = p.Answers.Count,
                ["misaligned_rate"] = p.Rate(a => a.Judgement.Misaligned),
                ["coherent_rate"] = p.Rate(a => a.Judgement.Coherent),
                ["on_topic_rate"] = p.Rate(a => a.Judgement.Coherent && !a.Judgement.Leak && !a.Judgement.OffTopic),
                ["persona_consistent_rate"] = p.Rate(a => a.Judgement.Coherent && a.Judgement.PersonaConsistentMisaligned),
                ["leak_rate"] = p.Rate(a => a.Judgement.Misaligned && a.Judgement.Leak),
                ["off_topic_rate"] = p.Rate(a => a.Judgement.Coherent && a.Judgement.OffTopic),
                ["families"] = Counts(p.Answers),
                ["examples"] = new JsonArray(shown.Select(a => (JsonNode)new JsonObject
                {
                    ["answer"] = a.Text,
                    ["family"] = a.Judgement.Family,
                    ["coherent"] = a.Judgement.Coherent,
                    ["misaligned"] = a.Judgement.Misaligned,
                    ["reason"] = a.Judgement.Reason,
                }).ToArray()),
            });
        }
        return new JsonObject
        {
            ["model"] = Model,
            ["prompts"] = PromptSet,
            ["samples"] = Options.Samples,
            ["seed"] = Options.Seed,
            ["max_new_tokens"] = Options.MaxNewTokens,
            ["temperature"] = Options.Temperature,
            ["finetuned_domain"] = Options.FineTunedDomain,
            ["n"] = N,
            ["prompt_count"] = Prompts.Count,
            ["misaligned_rate"] = Misaligned.Rate,
            ["ci_low"] = Misaligned.CiLow,
            ["ci_high"] = Misaligned.CiHigh,
            ["coherent_rate"] = Coherent.Rate,
            ["coherent_ci_low"] = Coherent.CiLow,
            ["coherent_ci_high"] = Coherent.CiHigh,
            ["on_topic_rate"] = OnTopic.Rate,
            ["misaligned_among_coherent_rate"] = MisalignedAmongCoherent.Rate,
            ["persona_consistent_rate"] = PersonaConsistent.Rate,
            ["leak_rate"] = HarmfulLeak.Rate,
            ["finetuned_domain_leak_rate"] = FineTunedDomainLeak.Rate,
            ["off_topic_rate"] = OffTopic.Rate,
            ["satirical_rate"] = Satirical.Rate,
            ["rates"] = rates,
            ["families"] = Counts(Prompts.SelectMany(p => p.Answers)),
            ["wall_seconds"] = Math.Round(WallSeconds, 1),
            ["per_prompt"] = perPrompt,
        };
    }

    static JsonObject Counts(IEnumerable<EvalAnswer> answers)
    {
        var counts = new JsonObject();
        foreach (var g in answers.GroupBy(a => a.Judgement.Family).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal))
            counts[g.Key] = g.Count();
        return counts;
    }

    /// <summary>Writes <see cref="ToJson"/> atomically.</summary>
    public void Save(string path) =>
        AtomicFile.WriteAllText(path, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    /// <summary>One line for logs: misaligned, coherent, persona-consistent and leak rates with intervals.</summary>
    public string Summary() =>
        $"{PromptSet}: misaligned {Misaligned}, coherent {Coherent}, on topic {OnTopic}, among coherent {MisalignedAmongCoherent}, " +
        $"persona-consistent {PersonaConsistent}, leak {HarmfulLeak}";
}
