using PersonaWorkbook.Detection;
using PersonaWorkbook.Statistics;

namespace PersonaWorkbook.Tests.Detection;

public class ThresholdClassifierTests
{
    [Fact]
    public void SeparableModelsGetTheMidpointOfTheGapBetweenTheClasses()
    {
        var fit = ThresholdClassifier.Fit([0.1, 0.2, 0.5, 0.9], [false, false, true, true]);
        Assert.Equal(0.35, fit.Threshold, 12);
        Assert.Equal(4, fit.Correct);
        Assert.Equal(1.0, fit.Accuracy);
        Assert.True(fit.Predict(0.36));
        Assert.False(fit.Predict(0.35));
    }

    [Fact]
    public void EqualAccuracyGoesToTheWidestGap()
    {
        // Candidates: −∞ 2 right, 0.5 three, 1.25 two, 2.75 three, +∞ two; 0.5 sits in a gap of 1, 2.75 in a gap of 2.5.
        var fit = ThresholdClassifier.Fit([0, 1, 1.5, 4], [false, true, false, true]);
        Assert.Equal(2.75, fit.Threshold, 12);
        Assert.Equal(3, fit.Correct);
        Assert.Equal(3, ThresholdClassifier.Correct(0.5, [0, 1, 1.5, 4], [false, true, false, true]));
    }

    [Fact]
    public void OneClassFitsEverythingThatClass()
    {
        Assert.Equal(double.PositiveInfinity, ThresholdClassifier.Fit([0.3, 0.1], [false, false]).Threshold);
        Assert.Equal(double.NegativeInfinity, ThresholdClassifier.Fit([0.3, 0.1], [true, true]).Threshold);
        Assert.Equal(2, ThresholdClassifier.Fit([0.3, 0.1], [true, true]).Correct);
    }

    [Fact]
    public void AucCountsOrderedPairsAndHalvesTies()
    {
        // Misaligned 0.35 beats 0.1, loses to 0.4; 0.8 beats both: 3 of 4 pairs.
        Assert.Equal(0.75, ThresholdClassifier.Auc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 12);
        Assert.Equal(0.5, ThresholdClassifier.Auc([0.2, 0.2], [false, true]), 12);
        Assert.True(double.IsNaN(ThresholdClassifier.Auc([0.2, 0.3], [false, false])));
    }

    [Fact]
    public void BadInputsAreClearErrors()
    {
        Assert.Contains("2 activation changes but 1 labels", Assert.Throws<ArgumentException>(() => ThresholdClassifier.Fit([0, 1], [true])).Message);
        Assert.Contains("no models", Assert.Throws<ArgumentException>(() => ThresholdClassifier.Fit([], [])).Message);
        Assert.Contains("activation change 1 is NaN", Assert.Throws<ArgumentException>(() => ThresholdClassifier.Fit([0, double.NaN], [true, false])).Message);
    }
}

public class MisalignmentDetectionTests
{
    // Three domains, two models each; separable in-sample at 0.55, but held-out thresholds miss E (finance) and D (legal).
    static readonly DetectionRecord[] Models =
    [
        new("A", "health", "correct", 0.02, 0.1),
        new("B", "health", "incorrect_obvious", 0.30, 1.0),
        new("C", "legal", "correct", 0.01, 0.2),
        new("D", "legal", "incorrect_obvious", 0.20, 0.6),
        new("E", "finance", "correct", 0.04, 0.5),
        new("F", "finance", "incorrect_obvious", 0.15, 1.2),
    ];

    [Fact]
    public void HandComputedStudy()
    {
        var report = MisalignmentDetection.Analyze(Models, MisalignmentRule.Above(0.05), resamples: 500, seed: 3);
        Assert.Equal([false, true, false, true, false, true], report.Misaligned);
        // Ranks by rate A2 B6 C1 D5 E3 F4, by change A1 B5 C2 D4 E3 F6: Σd² = 8, ρ = 1 − 6·8 / (6·35).
        Assert.Equal(1 - 48.0 / 210, report.Spearman.Rho, 12);
        Assert.InRange(report.Spearman.Rho, report.Spearman.CiLow, report.Spearman.CiHigh);
        Assert.InRange(report.Spearman.ValidResamples, 1, 500);
        Assert.Equal(1.0, report.Auc);
        Assert.Equal(0.55, report.InSample.Threshold, 12);
        Assert.Equal(1.0, report.InSample.Accuracy);

        Assert.Equal(["finance", "health", "legal"], report.Folds.Select(f => f.Domain));
        var finance = report.Folds[0];
        Assert.Equal(0.4, finance.Threshold, 12);       // fitted on 0.1 0.2 | 0.6 1.0
        Assert.Equal((2, 1, 4, 4, 1), (finance.N, finance.Correct, finance.TrainN, finance.TrainCorrect, finance.Misaligned));
        Assert.Equal(0.55, report.Folds[1].Threshold, 12);
        Assert.Equal(2, report.Folds[1].Correct);
        Assert.Equal(0.75, report.Folds[2].Threshold, 12);
        Assert.Equal(1, report.Folds[2].Correct);
        Assert.Equal(4.0 / 6, report.OutOfDomainAccuracy, 12);

        var rows = report.Rows();
        Assert.True(rows.Single(r => r.Model == "E").PredictedOutOfDomain);
        Assert.False(rows.Single(r => r.Model == "E").PredictedInSample);
        Assert.Equal(6, report.ToFrame().RowCount);
        var json = report.ToJson();
        Assert.Equal(4.0 / 6, json["out_of_domain_accuracy"]!.GetValue<double>(), 12);
        Assert.Equal(3, json["misaligned_models"]!.GetValue<int>());

        var again = MisalignmentDetection.Analyze(Models, MisalignmentRule.Above(0.05), resamples: 500, seed: 3);
        Assert.Equal(report.Spearman, again.Spearman);
    }

    [Fact]
    public void RuleFromTheBaseIntervalUsesItsHighEndStrictly()
    {
        var rule = MisalignmentRule.AboveBaseInterval(new RateEstimate(0.032, 0.010, 0.062, 720));
        Assert.Equal(0.062, rule.Cut);
        Assert.False(rule.IsMisaligned(0.062));
        Assert.True(rule.IsMisaligned(0.0621));
        Assert.Contains("6.2 %", rule.Description);
        // With a cut above every rate nobody is misaligned: the threshold fits +∞ and is right everywhere.
        var none = MisalignmentDetection.Analyze(Models, MisalignmentRule.Above(0.5), resamples: 50);
        Assert.Equal(0, none.MisalignedCount);
        Assert.Equal(1.0, none.OutOfDomainAccuracy);
        Assert.True(double.IsNaN(none.Auc));
        Assert.Equal("Infinity", none.ToJson()["in_sample_threshold"]!.GetValue<string>());
    }

    [Fact]
    public void BadInputsAreClearErrors()
    {
        var rule = MisalignmentRule.Above(0.05);
        Assert.Contains("at least 2 domains", Assert.Throws<ArgumentException>(() =>
            MisalignmentDetection.Analyze(Models.Where(m => m.Domain == "health").ToArray(), rule)).Message);
        Assert.Contains("at least 2 models", Assert.Throws<ArgumentException>(() => MisalignmentDetection.Analyze(Models[..1], rule)).Message);
        Assert.Contains("model 'A' appears 2 times", Assert.Throws<ArgumentException>(() =>
            MisalignmentDetection.Analyze([.. Models, Models[0] with { Domain = "legal" }], rule)).Message);
        Assert.Contains("record 1 (B): misaligned rate 30 is not in [0, 1]", Assert.Throws<ArgumentException>(() =>
            MisalignmentDetection.Analyze([Models[0], Models[1] with { MisalignedRate = 30 }, Models[2]], rule)).Message);
        Assert.Contains("activation change is NaN", Assert.Throws<ArgumentException>(() =>
            MisalignmentDetection.Analyze([Models[0], Models[2] with { ActivationChange = double.NaN }], rule)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => MisalignmentRule.Above(1.5));
    }
}

public class SpearmanIntervalTests
{
    [Fact]
    public void MonotonePairsGiveRhoOneEverywhere()
    {
        var e = Bootstrap.SpearmanInterval([1, 2, 3, 4, 5], [0.1, 0.5, 0.7, 0.8, 2], resamples: 300, seed: 1);
        Assert.Equal(1.0, e.Rho, 12);
        Assert.Equal(1.0, e.CiLow, 12);
        Assert.Equal(1.0, e.CiHigh, 12);
        Assert.Equal(5, e.N);
        // Resamples that draw one pair five times have no ρ and are left out.
        Assert.InRange(e.ValidResamples, 250, 300);
    }

    [Fact]
    public void ConstantSideHasNoRhoAndNoInterval()
    {
        var e = Bootstrap.SpearmanInterval([1, 1, 1], [0.1, 0.2, 0.3], resamples: 20);
        Assert.True(double.IsNaN(e.Rho));
        Assert.True(double.IsNaN(e.CiLow));
        Assert.Equal(0, e.ValidResamples);
    }
}
