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

    // Acklam's coefficients, highest power first (each denominator ends in its constant 1).
    static readonly double[] CentralNumerator = [ -3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00 ];
    static readonly double[] CentralDenominator = [ -5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01, 1 ];
    static readonly double[] TailNumerator = [ -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00 ];
    static readonly double[] TailDenominator = [ 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00, 1 ];

    /// <summary>
    /// The standard normal quantile Φ⁻¹(p) (Acklam's rational approximation, relative error below 1.2e-9): the z of a
    /// two-sided interval at level L is NormalQuantile(0.5 + L / 2), 1.96 at 0.95.
    /// </summary>
    public static double NormalQuantile(double p)
    {
        if (!(p > 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "p must lie in (0, 1).");
        const double tail = 0.02425;
        if (p < tail || p > 1 - tail)
        {
            // Tails: a rational function of sqrt(-2 ln q), q the nearer tail's mass, signed by the side.
            double q = Math.Sqrt(-2 * Math.Log(Math.Min(p, 1 - p)));
            double z = Horner(TailNumerator, q) / Horner(TailDenominator, q);
            return p < tail ? z : -z;
        }
        double r = p - 0.5, r2 = r * r;
        return Horner(CentralNumerator, r2) * r / Horner(CentralDenominator, r2);
    }

    static double Horner(double[] coefficients, double x)
    {
        double sum = 0;
        foreach (var c in coefficients) sum = sum * x + c;
        return sum;
    }
}
