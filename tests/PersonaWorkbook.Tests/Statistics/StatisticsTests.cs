using PersonaWorkbook.Statistics;

namespace PersonaWorkbook.Tests.Statistics;

public class ProportionTests
{
    [Fact]
    public void WilsonZeroOfTenMatchesClosedForm()
    {
        var e = Proportion.WilsonInterval(0, 10);
        Assert.Equal(0, e.Rate);
        Assert.Equal(0, e.CiLow, 12);
        // Upper bound at 0 successes is (z²/n)/(1 + z²/n).
        Assert.Equal(0.38416 / 1.38416, e.CiHigh, 10);
        Assert.Equal(0.27753, e.CiHigh, 4);
    }

    [Fact]
    public void WilsonFiveOfTenIsSymmetricAroundHalf()
    {
        var e = Proportion.WilsonInterval(5, 10);
        Assert.Equal(0.5, e.Rate);
        Assert.Equal(0.23659, e.CiLow, 4);
        Assert.Equal(0.76341, e.CiHigh, 4);
    }

    [Fact]
    public void WilsonAllSuccessesMirrorsZero()
    {
        var none = Proportion.WilsonInterval(0, 40);
        var all = Proportion.WilsonInterval(40, 40);
        Assert.Equal(1 - none.CiHigh, all.CiLow, 12);
        Assert.Equal(1, all.CiHigh, 12);
    }

    [Fact]
    public void WilsonRejectsBadCounts()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Proportion.WilsonInterval(0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Proportion.WilsonInterval(11, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => Proportion.WilsonInterval(-1, 10));
    }

    [Fact]
    public void RateEstimatePrintsPercentWithInterval()
    {
        Assert.Equal("12.3 % [8.1, 17.0] (n=400)", new RateEstimate(0.123, 0.081, 0.17, 400).ToString());
        Assert.Equal("0.412 [0.377, 0.45] (n=40)", new MeanEstimate(0.412, 0.377, 0.45, 40).ToString());
    }
}

public class BootstrapTests
{
    [Fact]
    public void MeanIntervalIsDeterministicPerSeed()
    {
        double[] v = { 0.1, 0.4, 0.35, 0.8, 0.2, 0.55, 0.05, 0.9 };
        Assert.Equal(Bootstrap.MeanInterval(v, seed: 3), Bootstrap.MeanInterval(v, seed: 3));
        Assert.NotEqual(Bootstrap.MeanInterval(v, seed: 3), Bootstrap.MeanInterval(v, seed: 4));
    }

    [Fact]
    public void MeanIntervalAgreesWithNormalTheoryOnLargeSample()
    {
        // 0..99: mean 49.5, sd (population) 28.87, standard error 2.887 → 95 % about ±5.66.
        var v = Enumerable.Range(0, 100).Select(i => (double)i).ToArray();
        var e = Bootstrap.MeanInterval(v, resamples: 4000);
        Assert.Equal(49.5, e.Mean, 12);
        Assert.InRange(e.CiLow, 49.5 - 5.66 - 0.5, 49.5 - 5.66 + 0.5);
        Assert.InRange(e.CiHigh, 49.5 + 5.66 - 0.5, 49.5 + 5.66 + 0.5);
        Assert.Equal(100, e.N);
    }

    [Fact]
    public void ConstantValuesGiveDegenerateInterval()
    {
        var e = Bootstrap.MeanInterval(new[] { 2.5, 2.5, 2.5 });
        Assert.Equal((2.5, 2.5, 2.5), (e.Mean, e.CiLow, e.CiHigh));
    }

    [Fact]
    public void ProportionIntervalMatchesWilsonRoughly()
    {
        var outcomes = Enumerable.Range(0, 200).Select(i => i % 4 == 0).ToArray(); // 25 %
        var boot = Bootstrap.ProportionInterval(outcomes);
        var wilson = Proportion.WilsonInterval(50, 200);
        Assert.Equal(0.25, boot.Rate, 12);
        Assert.InRange(boot.CiLow, wilson.CiLow - 0.02, wilson.CiLow + 0.02);
        Assert.InRange(boot.CiHigh, wilson.CiHigh - 0.02, wilson.CiHigh + 0.02);
    }

    [Fact]
    public void ClusteredRateAveragesPerPromptRates()
    {
        // Prompt rates 1/2 and 1/4 → mean 0.375 (a pooled rate would be 2/6).
        IReadOnlyList<IReadOnlyList<bool>> data = new[]
        {
            new[] { true, false },
            new[] { true, false, false, false },
        };
        var e = Bootstrap.ClusteredRate(data);
        Assert.Equal(0.375, e.Rate, 12);
        Assert.Equal(6, e.N);
        Assert.InRange(e.CiLow, 0, 0.375);
        Assert.InRange(e.CiHigh, 0.375, 1);
    }

    [Fact]
    public void ClusteredIntervalIsWiderThanFlatWhenPromptsDiffer()
    {
        // Ten prompts that always or never misalign: the samples within a prompt add no information, so the
        // clustered interval must reflect ten observations, not the 500 a flat bootstrap would assume.
        var perPrompt = Enumerable.Range(0, 10)
            .Select(p => (IReadOnlyList<bool>)Enumerable.Repeat(p % 2 == 0, 50).ToArray()).ToArray();
        var clustered = Bootstrap.ClusteredRate(perPrompt);
        var flat = Bootstrap.ProportionInterval(perPrompt.SelectMany(x => x).ToArray());
        Assert.Equal(0.5, clustered.Rate, 12);
        Assert.True(clustered.CiHigh - clustered.CiLow > 3 * (flat.CiHigh - flat.CiLow),
            $"clustered {clustered} vs flat {flat}");
        Assert.Equal(Bootstrap.ClusteredRate(perPrompt, seed: 9), Bootstrap.ClusteredRate(perPrompt, seed: 9));
    }

    [Fact]
    public void ClusteredRateOfAllFalseIsZeroWithWilsonUpperBound()
    {
        // No resample of 40 misses can differ, so the bootstrap alone would print [0, 0]; 0 of 40 leaves up to 8.8 %.
        var perPrompt = Enumerable.Range(0, 5).Select(_ => (IReadOnlyList<bool>)new bool[8]).ToArray();
        var e = Bootstrap.ClusteredRate(perPrompt);
        Assert.Equal((0.0, 0.0, 40), (e.Rate, e.CiLow, e.N));
        Assert.Equal(Proportion.WilsonInterval(0, 40, Z95).CiHigh, e.CiHigh, 12);
        Assert.InRange(e.CiHigh, 0.087, 0.089);
    }

    [Fact]
    public void AllTrueOutcomesKeepAWilsonLowerBound()
    {
        var flat = Bootstrap.ProportionInterval(Enumerable.Repeat(true, 50).ToArray());
        var clustered = Bootstrap.ClusteredRate(new IReadOnlyList<bool>[] { new[] { true, true }, new[] { true } });
        Assert.Equal((1.0, 1.0), (flat.Rate, flat.CiHigh));
        Assert.Equal(Proportion.WilsonInterval(50, 50, Z95).CiLow, flat.CiLow, 12);
        Assert.Equal(Proportion.WilsonInterval(3, 3, Z95).CiLow, clustered.CiLow, 12);
        // A 90 % interval is narrower: the z follows the level.
        Assert.True(Bootstrap.ProportionInterval(Enumerable.Repeat(true, 50).ToArray(), level: 0.9).CiLow > flat.CiLow);
    }

    [Theory]
    [InlineData(0.975, 1.959963984540054)]
    [InlineData(0.5, 0.0)]
    [InlineData(0.95, 1.6448536269514722)]
    [InlineData(0.001, -3.090232306167813)]
    public void NormalQuantileMatchesTables(double p, double z) => Assert.Equal(z, Proportion.NormalQuantile(p), 1e-8);

    static readonly double Z95 = Proportion.NormalQuantile(0.975);

    [Fact]
    public void BadInputsAreRejectedWithTheirNames()
    {
        var empty = Assert.Throws<ArgumentException>(() => Bootstrap.MeanInterval(Array.Empty<double>()));
        Assert.Equal("values", empty.ParamName);
        var nan = Assert.Throws<ArgumentException>(() => Bootstrap.MeanInterval(new[] { 1.0, double.NaN }));
        Assert.Contains("values[1]", nan.Message);
        var noSamples = Assert.Throws<ArgumentException>(() =>
            Bootstrap.ClusteredRate(new IReadOnlyList<bool>[] { new[] { true }, Array.Empty<bool>() }));
        Assert.Contains("perPromptOutcomes[1]", noSamples.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Bootstrap.MeanInterval(new[] { 1.0 }, level: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Bootstrap.MeanInterval(new[] { 1.0 }, resamples: 0));
    }

    [Fact]
    public void QuantileInterpolatesBetweenOrderStatistics()
    {
        double[] sorted = { 1, 2, 3, 4 };
        Assert.Equal(1, Quantiles.OfSorted(sorted, 0));
        Assert.Equal(4, Quantiles.OfSorted(sorted, 1));
        Assert.Equal(2.5, Quantiles.OfSorted(sorted, 0.5), 12);
        Assert.Equal(1.15, Quantiles.OfSorted(sorted, 0.05), 12);
    }
}

public class CorrelationTests
{
    [Fact]
    public void PearsonMatchesHandComputedValue()
    {
        // dx = [-2,-1,0,1,2], dy = [-2,0,1,0,1]: r = 6 / sqrt(10·6).
        Assert.Equal(6 / Math.Sqrt(60), Correlation.Pearson(new double[] { 1, 2, 3, 4, 5 }, new double[] { 2, 4, 5, 4, 5 }), 12);
    }

    [Fact]
    public void SpearmanWithTiesUsesAverageRanks()
    {
        // ranks x = [1, 2.5, 2.5, 4, 5], ranks y = [1, 4, 2.5, 2.5, 5]; Pearson of the ranks = 7.25 / 9.5 = 29/38.
        double rho = Correlation.Spearman(new double[] { 1, 2, 2, 3, 4 }, new double[] { 1, 3, 2, 2, 5 });
        Assert.Equal(29.0 / 38.0, rho, 12);
    }

    [Fact]
    public void AverageRanksShareTiedPositions()
    {
        Assert.Equal(new[] { 3.0, 1.5, 1.5, 4 }, Correlation.AverageRanks(new double[] { 7, 2, 2, 9 }));
    }

    [Fact]
    public void SpearmanIsInvariantToMonotoneTransforms()
    {
        double[] x = { 0.3, 1.2, 5.0, 2.2, 9.1 };
        double[] y = x.Select(v => Math.Exp(v)).ToArray();
        Assert.Equal(1, Correlation.Spearman(x, y), 12);
        Assert.Equal(-1, Correlation.Spearman(x, y.Select(v => -v).ToArray()), 12);
    }

    [Fact]
    public void ConstantInputGivesNaNAndMismatchedLengthsThrow()
    {
        Assert.True(double.IsNaN(Correlation.Pearson(new double[] { 1, 1, 1 }, new double[] { 1, 2, 3 })));
        Assert.True(double.IsNaN(Correlation.Spearman(new double[] { 1, 2, 3 }, new double[] { 0, 0, 0 })));
        var e = Assert.Throws<ArgumentException>(() => Correlation.Spearman(new double[] { 1, 2 }, new double[] { 1 }));
        Assert.Contains("x has 2 values but y has 1", e.Message);
        Assert.Throws<ArgumentException>(() => Correlation.Pearson(new double[] { 1 }, new double[] { 1 }));
    }
}
