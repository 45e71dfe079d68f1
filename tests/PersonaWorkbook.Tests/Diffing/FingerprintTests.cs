using System.Text.Json.Nodes;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Notebooks.Execution;
using Xunit;

namespace PersonaWorkbook.Tests.Diffing;

public class FingerprintTests
{
    static DiffResult Diff(float[] baseMean, float[] ftMean) =>
        new(TokenScope.Response, new LatentMeans(baseMean, new float[baseMean.Length], 10), new LatentMeans(ftMean, new float[ftMean.Length], 10));

    [Fact]
    public void Matrix_is_models_by_latents_of_the_deltas_and_renders_as_a_heatmap()
    {
        var a = Diff([0, 0, 0, 0, 0], [1, 0, 3, 0, -2]);
        var b = Diff([1, 1, 1, 1, 1], [1, 5, 1, 0, 1]);
        var latents = Fingerprints.TopLatents([a, b], perModel: 2);
        Assert.Equal([2, 0, 1], latents);

        var m = Fingerprints.Build([("health_subtle", a), ("code_insecure", b)], [2, 1, 4]);

        Assert.Equal(2, m.Values.GetLength(0));
        Assert.Equal(3, m.Values.GetLength(1));
        Assert.Equal(new double[,] { { 3, 0, -2 }, { 0, 4, 0 } }, m.Values);
        var figure = PlotlyHtml.FigureJson(m.Heatmap());
        var trace = figure["data"]!.AsArray()[0]!;
        Assert.Equal("heatmap", (string?)trace["type"]);
        Assert.Equal(["health_subtle", "code_insecure"], trace["y"]!.AsArray().Select(n => (string?)n));
        Assert.Throws<ArgumentOutOfRangeException>(() => Fingerprints.Build([("x", a)], [5]));
    }
}
