namespace PersonaWorkbook.Statistics;

/// <summary>Closed-form intervals for a binomial proportion.</summary>
public static class Proportion
{
    /// <summary>
    /// Wilson score interval. Unlike the normal (Wald) interval it stays inside [0, 1] and is not degenerate at 0/n or
    /// n/n, which matters here because base-model misaligned rates are often exactly zero.
    /// </summary>
    public static RateEstimate WilsonInterval(int successes, int n, double z = 1.96)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "Wilson interval needs n ≥ 1 observations.");
        if (successes < 0 || successes > n)
            throw new ArgumentOutOfRangeException(nameof(successes), successes, $"successes must lie in [0, n={n}].");
        if (!(z > 0) || double.IsInfinity(z)) throw new ArgumentOutOfRangeException(nameof(z), z, "z must be a positive finite number.");

        double p = (double)successes / n;
        double z2n = z * z / n;
        double denominator = 1 + z2n;
        double center = (p + z2n / 2) / denominator;
        double half = z / denominator * Math.Sqrt(p * (1 - p) / n + z2n / (4.0 * n));
        // Clamp only floating-point spill (e.g. 1 + 1e-17); the exact bounds are already within [0, 1].
        return new RateEstimate(p, Math.Max(0, center - half), Math.Min(1, center + half), n);
    }
}
