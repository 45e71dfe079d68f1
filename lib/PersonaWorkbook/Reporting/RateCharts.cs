using Microsoft.FSharp.Core;
using Plotly.NET;
using PersonaWorkbook.Statistics;

namespace PersonaWorkbook.Reporting;

/// <summary>Plotly charts of rates with their confidence intervals, in percent.</summary>
public static class RateCharts
{
    /// <summary>
    /// One column trace named <paramref name="name"/>: a bar per key at 100 × rate, with the 95 % interval as asymmetric
    /// error bars (Plotly.NET.CSharp has no error-bar argument, and its F# one takes F# options).
    /// </summary>
    public static GenericChart Columns(string name, IEnumerable<string> keys, IEnumerable<RateEstimate> rates)
    {
        var k = keys.ToList();
        var r = rates.ToList();
        if (k.Count != r.Count) throw new ArgumentException($"chart '{name}': {k.Count} keys but {r.Count} rates");
        var bad = r.FindIndex(x => !(x.CiLow <= x.Rate && x.Rate <= x.CiHigh));
        if (bad >= 0) throw new ArgumentException($"chart '{name}': rate of '{k[bad]}' ({r[bad]}) lies outside its interval");
        var column = Plotly.NET.CSharp.Chart.Column<double, string, string>(values: r.Select(x => 100 * x.Rate), Keys: k, Name: name);
        var error = Plotly.NET.TraceObjects.Error.init<double, double>(
            Visible: FSharpOption<bool>.Some(true), Type: FSharpOption<StyleParam.ErrorType>.Some(StyleParam.ErrorType.Data),
            Symmetric: FSharpOption<bool>.Some(false),
            Array: FSharpOption<IEnumerable<double>>.Some(r.Select(x => 100 * (x.CiHigh - x.Rate)).ToArray()),
            Arrayminus: FSharpOption<IEnumerable<double>>.Some(r.Select(x => 100 * (x.Rate - x.CiLow)).ToArray()),
            ArrayEncoded: null, ArrayminusEncoded: null, Value: null, Valueminus: null, Traceref: null, Tracerefminus: null,
            Copy_ystyle: null, Color: null, Thickness: null, Width: null);
        return Plotly.NET.Chart.withYError(error).Invoke(column);
    }
}
