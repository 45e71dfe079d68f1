namespace PersonaWorkbook.Statistics;

/// <summary>Sample quantiles with linear interpolation between order statistics (R's type 7, numpy's default).</summary>
public static class Quantiles
{
    /// <summary>The q-quantile of values already sorted ascending.</summary>
    public static double OfSorted(IReadOnlyList<double> sorted, double q)
    {
        if (sorted.Count == 0) throw new ArgumentException("no values to take a quantile of");
        double position = q * (sorted.Count - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, sorted.Count - 1);
        return sorted[below] + (position - below) * (sorted[above] - sorted[below]);
    }

    /// <summary>The median: the middle value, or the mean of the two middle values for an even count.</summary>
    public static double Median(IEnumerable<double> values) => OfSorted(values.Order().ToArray(), 0.5);
}
