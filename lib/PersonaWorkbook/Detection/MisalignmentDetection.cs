using System.Text.Json;
using System.Text.Json.Nodes;
using Deedle;
using PersonaWorkbook.Statistics;

namespace PersonaWorkbook.Detection;

/// <summary>
/// One leave-one-domain-out fold: the threshold fitted on every other domain's models (<see cref="TrainN"/> of them,
/// <see cref="TrainCorrect"/> right), then applied to this domain's <see cref="N"/> models (<see cref="Correct"/> right).
/// </summary>
public sealed record DomainFold(string Domain, double Threshold, int N, int Correct, int TrainN, int TrainCorrect, int Misaligned)
{
    public double Accuracy => (double)Correct / N;
}

/// <summary>A record with its label and the predictions of the in-sample and held-out thresholds, for a table.</summary>
public sealed record DetectionRow(string Model, string Domain, string Kind, double MisalignedRate, double ActivationChange,
    bool Misaligned, bool PredictedInSample, bool PredictedOutOfDomain);

/// <summary>
/// How well the persona latent's activation change tracks and detects misalignment across models.
/// <see cref="OutOfDomainAccuracy"/> pools the held-out predictions of every fold (correct / models); the paper's
/// "perfect separation" is the in-sample figure (<see cref="InSample"/>), which cannot tell a detector from a fit.
/// </summary>
public sealed record DetectionReport(
    IReadOnlyList<DetectionRecord> Records,
    MisalignmentRule Rule,
    IReadOnlyList<bool> Misaligned,
    CorrelationEstimate Spearman,
    double Auc,
    ThresholdFit InSample,
    IReadOnlyList<DomainFold> Folds,
    double OutOfDomainAccuracy)
{
    public int MisalignedCount => Misaligned.Count(m => m);

    public IReadOnlyList<DetectionRow> Rows()
    {
        var heldOut = Folds.ToDictionary(f => f.Domain, f => f.Threshold, StringComparer.Ordinal);
        return Records.Select((r, i) => new DetectionRow(r.Model, r.Domain, r.Kind, r.MisalignedRate, r.ActivationChange, Misaligned[i],
            InSample.Predict(r.ActivationChange), r.ActivationChange > heldOut[r.Domain])).ToArray();
    }

    /// <summary>One row per model for notebooks.</summary>
    public Frame<int, string> ToFrame() => Frame.FromRecords(Rows());

    /// <summary>The summary and every model's row; infinite thresholds are written as the strings "Infinity" / "-Infinity".</summary>
    public JsonObject ToJson()
    {
        static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : double.IsNaN(v) ? null : JsonValue.Create(v > 0 ? "Infinity" : "-Infinity");
        return new JsonObject
        {
            ["rule"] = Rule.Description,
            ["cut"] = Rule.Cut,
            ["models"] = Records.Count,
            ["misaligned_models"] = MisalignedCount,
            ["spearman"] = Number(Spearman.Rho),
            ["spearman_ci_low"] = Number(Spearman.CiLow),
            ["spearman_ci_high"] = Number(Spearman.CiHigh),
            ["spearman_valid_resamples"] = Spearman.ValidResamples,
            ["auc"] = Number(Auc),
            ["in_sample_threshold"] = Number(InSample.Threshold),
            ["in_sample_accuracy"] = InSample.Accuracy,
            ["out_of_domain_accuracy"] = OutOfDomainAccuracy,
            ["folds"] = new JsonArray(Folds.Select(f => (JsonNode)new JsonObject
            {
                ["domain"] = f.Domain, ["threshold"] = Number(f.Threshold), ["n"] = f.N, ["correct"] = f.Correct,
                ["misaligned"] = f.Misaligned, ["train_n"] = f.TrainN, ["train_correct"] = f.TrainCorrect,
            }).ToArray()),
            ["records"] = new JsonArray(Rows().Select(r => (JsonNode)new JsonObject
            {
                ["model"] = r.Model, ["domain"] = r.Domain, ["kind"] = r.Kind, ["misaligned_rate"] = r.MisalignedRate,
                ["activation_change"] = r.ActivationChange, ["misaligned"] = r.Misaligned,
                ["predicted_in_sample"] = r.PredictedInSample, ["predicted_out_of_domain"] = r.PredictedOutOfDomain,
            }).ToArray()),
        };
    }

    public void Save(string path) =>
        AtomicFile.WriteAllText(path, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
}

/// <summary>
/// The paper's detection claim (Wang et al. §4.3, Fig. 9: the toxic-persona latent's activation change separates
/// misaligned from aligned models), measured honestly: rank correlation with a bootstrap interval over models, and a
/// single threshold judged on domains it was not fitted on.
/// </summary>
public static class MisalignmentDetection
{
    /// <summary>
    /// Labels each record with <paramref name="rule"/>, then: Spearman ρ between activation change and misaligned rate
    /// (percentile bootstrap over models, <paramref name="resamples"/> draws seeded by <paramref name="seed"/>); ROC AUC;
    /// the in-sample threshold (fitted and scored on every model); and leave-one-domain-out, where each domain's
    /// models are classified by the threshold fitted on all other domains' models (<see cref="ThresholdClassifier.Fit"/>).
    /// Needs at least two models and two domains.
    /// </summary>
    public static DetectionReport Analyze(IReadOnlyList<DetectionRecord> records, MisalignmentRule rule, int resamples = 2000, int seed = 0, double level = 0.95)
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(rule);
        if (records.Count < 2) throw new ArgumentException($"detection needs at least 2 models, got {records.Count}");
        for (int i = 0; i < records.Count; i++) records[i].Validate(i);
        var duplicate = records.GroupBy(r => r.Model, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"model '{duplicate.Key}' appears {duplicate.Count()} times; each model is one record");
        var domains = records.Select(r => r.Domain).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        if (domains.Length < 2) throw new ArgumentException($"leave-one-domain-out needs models from at least 2 domains; every record is in '{domains[0]}'");

        var changes = records.Select(r => r.ActivationChange).ToArray();
        var labels = records.Select(r => rule.IsMisaligned(r.MisalignedRate)).ToArray();
        var spearman = Bootstrap.SpearmanInterval(changes, records.Select(r => r.MisalignedRate).ToArray(), resamples, seed, level);
        var inSample = ThresholdClassifier.Fit(changes, labels);

        var folds = new List<DomainFold>(domains.Length);
        foreach (var domain in domains)
        {
            var test = Enumerable.Range(0, records.Count).Where(i => records[i].Domain == domain).ToArray();
            var train = Enumerable.Range(0, records.Count).Where(i => records[i].Domain != domain).ToArray();
            var fit = ThresholdClassifier.Fit(train.Select(i => changes[i]).ToArray(), train.Select(i => labels[i]).ToArray());
            var correct = ThresholdClassifier.Correct(fit.Threshold, test.Select(i => changes[i]).ToArray(), test.Select(i => labels[i]).ToArray());
            folds.Add(new DomainFold(domain, fit.Threshold, test.Length, correct, fit.N, fit.Correct, test.Count(i => labels[i])));
        }
        return new DetectionReport(records, rule, labels, spearman, ThresholdClassifier.Auc(changes, labels), inSample, folds,
            (double)folds.Sum(f => f.Correct) / records.Count);
    }
}
