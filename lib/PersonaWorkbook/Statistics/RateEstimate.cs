using System.Globalization;
using System.Text.Json.Nodes;

namespace PersonaWorkbook.Statistics;

/// <summary>
/// A rate in [0, 1] with its confidence interval and the number of observations behind it.
/// Printed as a percentage, e.g. "12.3 % [8.1, 17.0] (n=400)".
/// </summary>
public sealed record RateEstimate(double Rate, double CiLow, double CiHigh, int N)
{
    public override string ToString() => string.Format(CultureInfo.InvariantCulture,
        "{0:0.0} % [{1:0.0}, {2:0.0}] (n={3})", 100 * Rate, 100 * CiLow, 100 * CiHigh, N);

    /// <summary><c>{"rate", "ci_low", "ci_high", "n"}</c>, the form evaluation reports and snapshot files store.</summary>
    public JsonObject ToJson() => new() { ["rate"] = Rate, ["ci_low"] = CiLow, ["ci_high"] = CiHigh, ["n"] = N };

    /// <summary>Reads <see cref="ToJson"/>'s object; a missing field is an error naming it.</summary>
    public static RateEstimate FromJson(JsonObject o)
    {
        T Get<T>(string name) => (o[name] ?? throw new InvalidDataException($"field '{name}' of a rate is missing")).GetValue<T>();
        return new RateEstimate(Get<double>("rate"), Get<double>("ci_low"), Get<double>("ci_high"), Get<int>("n"));
    }
}

/// <summary>A mean (of any quantity) with its confidence interval, e.g. "0.412 [0.377, 0.450] (n=40)".</summary>
public sealed record MeanEstimate(double Mean, double CiLow, double CiHigh, int N)
{
    public override string ToString() => string.Format(CultureInfo.InvariantCulture,
        "{0:0.###} [{1:0.###}, {2:0.###}] (n={3})", Mean, CiLow, CiHigh, N);
}

/// <summary>
/// A correlation coefficient with its bootstrap interval over <see cref="N"/> pairs; <see cref="ValidResamples"/> of the
/// resamples had a defined coefficient (those with every value tied on one side have none).
/// </summary>
public sealed record CorrelationEstimate(double Rho, double CiLow, double CiHigh, int N, int ValidResamples)
{
    public override string ToString() => string.Format(CultureInfo.InvariantCulture,
        "ρ = {0:0.###} [{1:0.###}, {2:0.###}] (n={3})", Rho, CiLow, CiHigh, N);
}
