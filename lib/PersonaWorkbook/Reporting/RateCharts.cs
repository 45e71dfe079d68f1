using Microsoft.FSharp.Core;
using Plotly.NET;
using PersonaWorkbook.Statistics;

namespace PersonaWorkbook.Reporting;

/// <summary>The replicates (seeds) of one bar of a grouped rate chart: a series (the bar's colour) at a key (its group).</summary>
public sealed record RateGroup(string Series, string Key, IReadOnlyList<RateEstimate> Replicates)
{
    /// <summary>
    /// The bar: the replicates' mean with a bootstrap 95 % interval over replicates; a single replicate keeps its own
    /// interval (over its answers).
    /// </summary>
    public RateEstimate Bar()
    {
        if (Replicates.Count == 0) throw new ArgumentException($"bar '{Series}' at '{Key}' has no replicates");
        if (Replicates.Count == 1) return Replicates[0];
        var mean = Bootstrap.MeanInterval(Replicates.Select(r => r.Rate).ToArray(), seed: 0);
        return new RateEstimate(mean.Mean, mean.CiLow, mean.CiHigh, Replicates.Sum(r => r.N));
    }
}

/// <summary>One line of <see cref="RateCharts.Curves"/>: at each x, the replicates (seeds) measured there.</summary>
public sealed record RateCurve(string Series, IReadOnlyList<(double X, IReadOnlyList<RateEstimate> Replicates)> Points);

/// <summary>Plotly charts of rates with their confidence intervals, in percent.</summary>
public static class RateCharts
{
    /// <summary>
    /// Grouped columns, one colour per series and one group per key (in first-seen order), each bar the mean of its
    /// replicates with its 95 % interval as error bars (<see cref="RateGroup.Bar"/>), and every replicate drawn as a
    /// point over its own bar (Plotly's scattermode "group" with the bar's offsetgroup).
    /// </summary>
    public static GenericChart GroupedColumns(IEnumerable<RateGroup> groups, string yTitle, string xTitle)
    {
        var all = groups.ToList();
        if (all.Count == 0) throw new ArgumentException("no bars to draw");
        var charts = new List<GenericChart>();
        foreach (var series in all.Select(g => g.Series).Distinct())
        {
            var of = all.Where(g => g.Series == series).ToList();
            var bars = of.Select(g => g.Bar()).ToList();
            var column = Columns(series, of.Select(g => g.Key), bars);
            charts.Add(GenericChart.mapTrace(FSharpFunc<Trace, Trace>.FromConverter(t => Grouped(t, series)), column));
            var points = new Trace("scatter");
            points.SetProperty("mode", "markers");
            points.SetProperty("name", $"{series} (each replicate)");
            points.SetProperty("x", of.SelectMany(g => g.Replicates.Select(_ => g.Key)).ToArray());
            points.SetProperty("y", of.SelectMany(g => g.Replicates.Select(r => 100 * r.Rate)).ToArray());
            points.SetProperty("showlegend", false);
            var marker = new DynamicObj.DynamicObj();
            marker.SetProperty("color", "rgba(0,0,0,0.6)");
            marker.SetProperty("size", 6);
            points.SetProperty("marker", marker);
            charts.Add(GenericChart.ofTraceObject(true, Grouped(points, series)));
        }
        var layout = new Layout();
        layout.SetProperty("barmode", "group");
        layout.SetProperty("scattermode", "group");
        layout.SetProperty("yaxis", Axis(yTitle));
        layout.SetProperty("xaxis", Axis(xTitle));
        return GenericChart.addLayout(layout, Plotly.NET.CSharp.Chart.Combine(charts));
    }

    /// <summary>
    /// One line per curve through the replicates' mean at each x, its 95 % interval as a shaded band (over replicates,
    /// or a single replicate's own: <see cref="RateGroup.Bar"/>), in the line's colour.
    /// </summary>
    public static GenericChart Curves(IEnumerable<RateCurve> curves, string yTitle, string xTitle)
    {
        var all = curves.ToList();
        if (all.Count == 0) throw new ArgumentException("no curves to draw");
        string[] palette = ["31,119,180", "255,127,14", "44,160,44", "214,39,40", "148,103,189", "140,86,75", "227,119,194", "127,127,127"];
        var charts = new List<GenericChart>();
        foreach (var (curve, i) in all.Select((c, i) => (c, i)))
        {
            if (curve.Points.Count == 0) throw new ArgumentException($"curve '{curve.Series}' has no points");
            var x = curve.Points.Select(p => p.X).ToArray();
            var bars = curve.Points.Select(p => new RateGroup(curve.Series, p.X.ToString(System.Globalization.CultureInfo.InvariantCulture), p.Replicates).Bar()).ToArray();
            var colour = palette[i % palette.Length];
            var band = Plotly.NET.CSharp.Chart.Line<double, double, string>(x: x.Concat(x.Reverse()),
                y: bars.Select(b => 100 * b.CiHigh).Concat(bars.Reverse().Select(b => 100 * b.CiLow)),
                Fill: StyleParam.Fill.ToSelf, FillColor: Color.fromString($"rgba({colour},0.15)"), LineWidth: 0, ShowLegend: false, Name: $"{curve.Series} 95 %");
            charts.Add(band);
            charts.Add(Plotly.NET.CSharp.Chart.Line<double, double, string>(x: x, y: bars.Select(b => 100 * b.Rate), Name: curve.Series, ShowMarkers: true,
                LineColor: Color.fromString($"rgb({colour})"), MarkerColor: Color.fromString($"rgb({colour})")));
        }
        var layout = new Layout();
        layout.SetProperty("yaxis", Axis(yTitle));
        layout.SetProperty("xaxis", Axis(xTitle));
        return GenericChart.addLayout(layout, Plotly.NET.CSharp.Chart.Combine(charts));
    }

    static Trace Grouped(Trace trace, string series)
    {
        trace.SetProperty("offsetgroup", series);
        trace.SetProperty("legendgroup", series);
        return trace;
    }

    static DynamicObj.DynamicObj Axis(string title)
    {
        var text = new DynamicObj.DynamicObj();
        text.SetProperty("text", title);
        var axis = new DynamicObj.DynamicObj();
        axis.SetProperty("title", text);
        return axis;
    }

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
