using Deedle;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Evaluation;

/// <summary>
/// One sampled answer as a table shows it: the prompt, the answer, the judge's verdict, and how many of the model's
/// answers to that prompt were misaligned (so a striking example can be read against its frequency).
/// </summary>
public sealed record ShownAnswer(
    string Model, string Topic, string Prompt, string Answer, string Family, bool Coherent, bool Misaligned,
    string Reason, int PromptMisaligned, int PromptAnswers);

/// <summary>Tables of sampled answers and their verdicts across models, for reading evaluations answer by answer.</summary>
public static class AnswerExamples
{
    /// <summary>
    /// For each prompt of <paramref name="report"/> that <paramref name="prompts"/> accepts (all when null), the first
    /// answer <paramref name="prefer"/> accepts, or the prompt's first answer when none does. Sampling order decides, not
    /// a search for the worst answer, so the table shows what a reader would have drawn.
    /// </summary>
    public static IReadOnlyList<ShownAnswer> Pick(string model, EvalReport report, Func<EvalAnswer, bool>? prefer = null,
        Func<EvalPrompt, bool>? prompts = null)
    {
        ArgumentNullException.ThrowIfNull(report);
        var rows = new List<ShownAnswer>();
        foreach (var p in report.Prompts.Where(p => prompts?.Invoke(p.Prompt) ?? true))
        {
            if (p.Answers.Count == 0) throw new ArgumentException($"report '{report.Model}': prompt {p.Prompt.Id} has no answers", nameof(report));
            var a = (prefer is null ? null : p.Answers.FirstOrDefault(prefer)) ?? p.Answers[0];
            rows.Add(new ShownAnswer(model, p.Prompt.Subject, p.Prompt.Text, a.Text, a.Judgement.Family, a.Judgement.Coherent,
                a.Judgement.Misaligned, a.Judgement.Reason, p.Answers.Count(x => x.Judgement.Misaligned), p.Answers.Count));
        }
        return rows;
    }

    /// <summary>
    /// Answers per judged family: one row per model in the given order, one column per family (most frequent over all
    /// models first), zero where a model gave none of a family.
    /// </summary>
    public static Frame<string, string> FamilyCounts(IEnumerable<(string Model, EvalReport Report)> reports)
    {
        var list = reports.ToList();
        if (list.Count == 0) throw new ArgumentException("no reports to count", nameof(reports));
        var duplicate = list.GroupBy(r => r.Model).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"model '{duplicate.Key}' appears twice; rows are keyed by model", nameof(reports));
        var counts = list.Select(r => r.Report.FamilyCounts().ToDictionary(f => f.Family, f => f.Count)).ToList();
        var families = counts.SelectMany(c => c).GroupBy(kv => kv.Key)
            .OrderByDescending(g => g.Sum(kv => kv.Value)).ThenBy(g => g.Key, StringComparer.Ordinal).Select(g => g.Key).ToList();
        var models = list.Select(r => r.Model).ToList();
        return Frame.FromColumns(families.Select(f => KeyValuePair.Create(f,
            new Series<string, int>(models, counts.Select(c => c.GetValueOrDefault(f)).ToList()))));
    }

    /// <summary>
    /// The share of answers <paramref name="outcome"/> accepts per prompt subject (views topic or domain), pooled over
    /// every report, in order of first appearance. The 95 % interval is the bootstrap clustered over the (report, prompt)
    /// pairs of the subject, so several phrasings and several models of one topic are not mistaken for independent answers.
    /// </summary>
    public static IReadOnlyList<(string Subject, RateEstimate Rate)> BySubject(IEnumerable<EvalReport> reports,
        Func<EvalAnswer, bool> outcome, int resamples = 2000, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        var prompts = reports.SelectMany(r => r.Prompts).ToList();
        if (prompts.Count == 0) throw new ArgumentException("no prompts in the reports", nameof(reports));
        return prompts.GroupBy(p => p.Prompt.Subject)
            .Select(g => (g.Key, Bootstrap.ClusteredRate(g.Select(p => (IReadOnlyList<bool>)p.Answers.Select(outcome).ToArray()).ToList(), resamples, seed)))
            .ToList();
    }
}
