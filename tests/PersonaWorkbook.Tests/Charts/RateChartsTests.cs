using PersonaWorkbook.Notebooks.Execution;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Statistics;

namespace PersonaWorkbook.Tests.Charts;

public class RateChartsTests
{
    [Fact]
    public void ColumnsCarryTheIntervalsAsAsymmetricErrorBars()
    {
        var chart = RateCharts.Columns("base", ["wish", "bored"],
            [new RateEstimate(0.25, 0.125, 0.5, 40), new RateEstimate(0, 0, 0.1, 40)]);

        var trace = PlotlyHtml.FigureJson(chart)["data"]![0]!;
        Assert.Equal("bar", trace["type"]!.GetValue<string>());
        Assert.Equal("base", trace["name"]!.GetValue<string>());
        Assert.Equal([25.0, 0.0], trace["y"]!.AsArray().Select(v => v!.GetValue<double>()));
        var error = trace["error_y"]!;
        Assert.False(error["symmetric"]!.GetValue<bool>());
        Assert.Equal([25.0, 10.0], error["array"]!.AsArray().Select(v => v!.GetValue<double>()));
        Assert.Equal([12.5, 0.0], error["arrayminus"]!.AsArray().Select(v => v!.GetValue<double>()));
    }

    [Fact]
    public void GroupedColumnsDrawEachReplicateOverItsOwnBarWithTheMeansInterval()
    {
        RateEstimate R(double rate) => new(rate, Math.Max(0, rate - 0.05), Math.Min(1, rate + 0.05), 100);
        var chart = RateCharts.GroupedColumns(
        [
            new RateGroup("subtle", "health", [R(0.6), R(0.7), R(0.8)]),
            new RateGroup("subtle", "legal", [R(0.5), R(0.5), R(0.5)]),
            new RateGroup("obvious", "health", [R(0.2)]),
        ], "misaligned (%)", "domain");

        var figure = PlotlyHtml.FigureJson(chart);
        var data = figure["data"]!.AsArray();
        Assert.Equal(["bar", "scatter", "bar", "scatter"], data.Select(t => t!["type"]!.GetValue<string>()));
        var (bars, points) = (data[0]!, data[1]!);
        Assert.Equal("subtle", bars["offsetgroup"]!.GetValue<string>());
        Assert.Equal("subtle", points["offsetgroup"]!.GetValue<string>());
        Assert.Equal(["health", "legal"], bars["x"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal(70.0, bars["y"]![0]!.GetValue<double>(), 9);
        Assert.Equal(50.0, bars["y"]![1]!.GetValue<double>(), 9);
        // The mean's bootstrap interval over seeds: inside the replicates' range, around the mean.
        var up = bars["error_y"]!["array"]![0]!.GetValue<double>();
        var down = bars["error_y"]!["arrayminus"]![0]!.GetValue<double>();
        Assert.InRange(up, 0.1, 10.0 + 1e-9);
        Assert.InRange(down, 0.1, 10.0 + 1e-9);
        Assert.Equal(0.0, bars["error_y"]!["array"]![1]!.GetValue<double>(), 9);
        Assert.Equal(["health", "health", "health", "legal", "legal", "legal"], points["x"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal([60.0, 70.0, 80.0, 50.0, 50.0, 50.0], points["y"]!.AsArray().Select(v => Math.Round(v!.GetValue<double>(), 9)));
        // One replicate: its own interval.
        Assert.Equal(5.0, data[2]!["error_y"]!["array"]![0]!.GetValue<double>(), 9);
        Assert.Equal("group", figure["layout"]!["scattermode"]!.GetValue<string>());
        Assert.Equal("group", figure["layout"]!["barmode"]!.GetValue<string>());
        Assert.Contains("no replicates", Assert.Throws<ArgumentException>(() => RateCharts.GroupedColumns([new RateGroup("a", "b", [])], "y", "x")).Message);
    }

    [Fact]
    public void MismatchedOrImpossibleRatesAreErrors()
    {
        Assert.Contains("2 keys but 1 rates", Assert.Throws<ArgumentException>(() =>
            RateCharts.Columns("x", ["a", "b"], [new RateEstimate(0.1, 0, 0.2, 5)])).Message);
        Assert.Contains("'b'", Assert.Throws<ArgumentException>(() =>
            RateCharts.Columns("x", ["a", "b"], [new RateEstimate(0.1, 0, 0.2, 5), new RateEstimate(0.3, 0, 0.2, 5)])).Message);
    }
}
