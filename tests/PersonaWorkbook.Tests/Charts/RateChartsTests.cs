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
    public void MismatchedOrImpossibleRatesAreErrors()
    {
        Assert.Contains("2 keys but 1 rates", Assert.Throws<ArgumentException>(() =>
            RateCharts.Columns("x", ["a", "b"], [new RateEstimate(0.1, 0, 0.2, 5)])).Message);
        Assert.Contains("'b'", Assert.Throws<ArgumentException>(() =>
            RateCharts.Columns("x", ["a", "b"], [new RateEstimate(0.1, 0, 0.2, 5), new RateEstimate(0.3, 0, 0.2, 5)])).Message);
    }
}
