namespace PersonaWorkbook.Statistics;

/// <summary>
/// Percentile bootstrap intervals. Every method is deterministic for a given seed (System.Random with an explicit seed
/// uses a fixed algorithm), so a notebook re-run prints the same interval.
/// </summary>
public static class Bootstrap
{
    /// <summary>Percentile-bootstrap interval for the mean of <paramref name="values"/>.</summary>
    public static MeanEstimate MeanInterval(IReadOnlyList<double> values, int resamples = 2000, int seed = 0, double level = 0.95)
    {
        ArgumentNullException.ThrowIfNull(values);
        Validate(values.Count, nameof(values), resamples, level);
        for (int i = 0; i < values.Count; i++)
            if (!double.IsFinite(values[i]))
                throw new ArgumentException($"values[{i}] is {values[i]}; bootstrap needs finite values.", nameof(values));

        var rng = new Random(seed);
        var stats = new double[resamples];
        int n = values.Count;
        for (int r = 0; r < resamples; r++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += values[rng.Next(n)];
            stats[r] = sum / n;
        }
        var (low, high) = PercentileBounds(stats, level);
        return new MeanEstimate(Mean(values), low, high, n);
    }

    /// <summary>Percentile-bootstrap interval for the share of true outcomes.</summary>
    public static RateEstimate ProportionInterval(IReadOnlyList<bool> outcomes, int resamples = 2000, int seed = 0, double level = 0.95)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        var asDoubles = new double[outcomes.Count];
        int successes = 0;
        for (int i = 0; i < asDoubles.Length; i++)
            if (outcomes[i]) { asDoubles[i] = 1; successes++; }
        var m = MeanInterval(asDoubles, resamples, seed, level);
        return WidenIfAllAlike(new RateEstimate(m.Mean, m.CiLow, m.CiHigh, m.N), successes, level);
    }

    /// <summary>
    /// Two-level (prompts, then samples within each drawn prompt) percentile bootstrap for a rate defined as the mean
    /// of per-prompt rates. Evaluations draw many samples from few prompts, so samples of one prompt are correlated;
    /// resampling prompts carries the between-prompt spread into the interval that a flat bootstrap over all samples
    /// would hide. <see cref="RateEstimate.N"/> is the total number of samples.
    /// </summary>
    public static RateEstimate ClusteredRate(IReadOnlyList<IReadOnlyList<bool>> perPromptOutcomes, int resamples = 2000, int seed = 0, double level = 0.95)
    {
        ArgumentNullException.ThrowIfNull(perPromptOutcomes);
        Validate(perPromptOutcomes.Count, nameof(perPromptOutcomes), resamples, level);
        int prompts = perPromptOutcomes.Count;
        var outcomes = new bool[prompts][];
        int total = 0;
        double pointSum = 0;
        int successes = 0;
        for (int p = 0; p < prompts; p++)
        {
            var samples = perPromptOutcomes[p] ?? throw new ArgumentException($"perPromptOutcomes[{p}] is null.", nameof(perPromptOutcomes));
            if (samples.Count == 0)
                throw new ArgumentException($"perPromptOutcomes[{p}] has no samples; drop the prompt or sample it.", nameof(perPromptOutcomes));
            outcomes[p] = samples.ToArray();
            total += samples.Count;
            int promptHits = outcomes[p].Count(o => o);
            successes += promptHits;
            pointSum += (double)promptHits / samples.Count;
        }

        var rng = new Random(seed);
        var stats = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            double sum = 0;
            for (int i = 0; i < prompts; i++)
            {
                var samples = outcomes[rng.Next(prompts)];
                int hits = 0;
                for (int j = 0; j < samples.Length; j++) if (samples[rng.Next(samples.Length)]) hits++;
                sum += (double)hits / samples.Length;
            }
            stats[r] = sum / prompts;
        }
        var (low, high) = PercentileBounds(stats, level);
        return WidenIfAllAlike(new RateEstimate(pointSum / prompts, low, high, total), successes, level);
    }

    /// <summary>
    /// When every outcome is alike (0 of n, or n of n) no resample can differ, and the percentile interval collapses
    /// onto the rate: "0.0 [0.0, 0.0]" would claim certainty that n answers cannot give. The open side then takes the
    /// Wilson score bound of the pooled outcomes (0 of 200 → [0, 1.9 %]) — a floor, since clustering could only widen it.
    /// </summary>
    static RateEstimate WidenIfAllAlike(RateEstimate e, int successes, double level)
    {
        if (successes != 0 && successes != e.N) return e;
        var wilson = Proportion.WilsonInterval(successes, e.N, Proportion.NormalQuantile(0.5 + level / 2));
        return successes == 0 ? e with { CiHigh = Math.Max(e.CiHigh, wilson.CiHigh) } : e with { CiLow = Math.Min(e.CiLow, wilson.CiLow) };
    }

    /// <summary>
    /// Spearman's ρ of the pairs with a percentile-bootstrap interval from resampling whole pairs (e.g. models, each
    /// with its latent change and misaligned rate). A resample whose x or y values are all tied has no ρ
    /// (<see cref="Correlation.Spearman"/> is NaN); such resamples are left out and counted in
    /// <see cref="CorrelationEstimate.ValidResamples"/>. The interval is NaN when no resample had a ρ.
    /// </summary>
    public static CorrelationEstimate SpearmanInterval(IReadOnlyList<double> x, IReadOnlyList<double> y, int resamples = 2000, int seed = 0, double level = 0.95)
    {
        var rho = Correlation.Spearman(x, y);
        Validate(x.Count, nameof(x), resamples, level);
        var rng = new Random(seed);
        int n = x.Count;
        var xs = new double[n];
        var ys = new double[n];
        var stats = new List<double>(resamples);
        for (int r = 0; r < resamples; r++)
        {
            for (int i = 0; i < n; i++)
            {
                int j = rng.Next(n);
                xs[i] = x[j];
                ys[i] = y[j];
            }
            var s = Correlation.Spearman(xs, ys);
            if (!double.IsNaN(s)) stats.Add(s);
        }
        if (stats.Count == 0) return new CorrelationEstimate(rho, double.NaN, double.NaN, n, 0);
        var (low, high) = PercentileBounds(stats.ToArray(), level);
        return new CorrelationEstimate(rho, low, high, n, stats.Count);
    }

    /// <summary>
    /// The (1 − level)/2 and (1 + level)/2 quantiles, linearly interpolated between order statistics
    /// (the "type 7" rule of R and numpy's default), so small resample counts still give a definite answer.
    /// </summary>
    internal static (double Low, double High) PercentileBounds(double[] stats, double level)
    {
        Array.Sort(stats);
        double alpha = (1 - level) / 2;
        return (Quantiles.OfSorted(stats, alpha), Quantiles.OfSorted(stats, 1 - alpha));
    }

    static double Mean(IReadOnlyList<double> values)
    {
        double sum = 0;
        for (int i = 0; i < values.Count; i++) sum += values[i];
        return sum / values.Count;
    }

    static void Validate(int count, string name, int resamples, double level)
    {
        if (count == 0) throw new ArgumentException("bootstrap needs at least one observation.", name);
        if (resamples < 1) throw new ArgumentOutOfRangeException(nameof(resamples), resamples, "resamples must be ≥ 1.");
        if (!(level > 0 && level < 1)) throw new ArgumentOutOfRangeException(nameof(level), level, "level must lie in (0, 1).");
    }
}
