namespace PersonaWorkbook.Steering;

/// <summary>
/// How the screen looks for the strongest acceptable steering strength α ≥ 0 (acceptable: incoherence within the
/// bound). Each strategy asks the predicate at most once per α and returns the strongest acceptable α it saw, or null.
/// </summary>
public abstract record AlphaSearch
{
    /// <summary>Tries every α of the grid and keeps the largest acceptable one, even past an unacceptable one (no monotonicity assumed).</summary>
    public static AlphaSearch Grid(params double[] alphas) => new GridSearch(alphas);

    /// <summary>Tries start, start + step, … up to <paramref name="max"/> and stops at the first unacceptable α.</summary>
    public static AlphaSearch Upward(double start, double step, double max) => new UpwardSearch(start, step, max);

    /// <summary>
    /// Assumes acceptability falls with α: tries <paramref name="high"/> (done if acceptable), then
    /// <paramref name="low"/> (null if not), then halves the bracket <paramref name="iterations"/> times (diffing-toolkit
    /// searches [0, 200] this way).
    /// </summary>
    public static AlphaSearch Bisection(double low, double high, int iterations = 6) => new BisectionSearch(low, high, iterations);

    /// <summary>The strongest acceptable α found, or null when none was.</summary>
    public abstract double? Find(Func<double, bool> acceptable);

    static void CheckAlpha(double a, string what)
    {
        if (!double.IsFinite(a) || a < 0) throw new ArgumentException($"{what} must be a finite α ≥ 0 (the sign is the screen's direction), got {a}");
    }

    sealed record GridSearch(double[] Alphas) : AlphaSearch
    {
        public override double? Find(Func<double, bool> acceptable)
        {
            if (Alphas.Length == 0) throw new ArgumentException("the α grid is empty");
            foreach (var a in Alphas) CheckAlpha(a, "a grid value");
            double? best = null;
            foreach (var a in Alphas.Distinct().Order())
                if (acceptable(a)) best = a;
            return best;
        }
    }

    sealed record UpwardSearch(double Start, double Step, double Max) : AlphaSearch
    {
        public override double? Find(Func<double, bool> acceptable)
        {
            CheckAlpha(Start, "the upward search's start");
            CheckAlpha(Max, "the upward search's bound");
            if (!(Step > 0) || !double.IsFinite(Step)) throw new ArgumentException($"the upward search's step must be positive, got {Step}");
            if (Max < Start) throw new ArgumentException($"the upward search's bound {Max} is below its start {Start}");
            double? best = null;
            // Index times step, not repeated addition, so the grid does not drift past the bound by rounding.
            for (long i = 0; ; i++)
            {
                var a = Start + i * Step;
                if (a > Max + 1e-12 * Math.Max(1, Math.Abs(Max))) break;
                if (!acceptable(a)) break;
                best = a;
            }
            return best;
        }
    }

    sealed record BisectionSearch(double Low, double High, int Iterations) : AlphaSearch
    {
        public override double? Find(Func<double, bool> acceptable)
        {
            CheckAlpha(Low, "the bisection's low end");
            CheckAlpha(High, "the bisection's high end");
            if (High <= Low) throw new ArgumentException($"the bisection's high end {High} must exceed its low end {Low}");
            if (Iterations < 0) throw new ArgumentException($"the bisection's iterations must be ≥ 0, got {Iterations}");
            if (acceptable(High)) return High;
            if (!acceptable(Low)) return null;
            double good = Low, bad = High;
            for (int i = 0; i < Iterations; i++)
            {
                var mid = 0.5 * (good + bad);
                if (acceptable(mid)) good = mid; else bad = mid;
            }
            return good;
        }
    }
}
