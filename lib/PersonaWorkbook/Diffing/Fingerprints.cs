using Plotly.NET;
using Plotly.NET.LayoutObjects;

namespace PersonaWorkbook.Diffing;

/// <summary>Activation change (fine-tuned − base mean) of a set of latents for many fine-tuned models: Values[model, latent].</summary>
public sealed record FingerprintMatrix(IReadOnlyList<string> Models, IReadOnlyList<int> Latents, double[,] Values)
{
    /// <summary>A heatmap: one row per model, one column per latent, diverging colours centred on zero.</summary>
    public GenericChart Heatmap(string title = "Latent activation change (fine-tuned − base)")
    {
        var z = Enumerable.Range(0, Models.Count).Select(m => Enumerable.Range(0, Latents.Count).Select(l => Values[m, l]).ToArray()).ToArray();
        var bound = z.SelectMany(r => r).Select(Math.Abs).DefaultIfEmpty(0).Max();
        var trace = new Trace("heatmap");
        trace.SetProperty("z", z);
        trace.SetProperty("x", Latents.Select(l => $"#{l}").ToArray());
        trace.SetProperty("y", Models.ToArray());
        trace.SetProperty("colorscale", "RdBu");
        trace.SetProperty("reversescale", true);
        trace.SetProperty("zmid", 0.0);
        if (bound > 0) { trace.SetProperty("zmin", -bound); trace.SetProperty("zmax", bound); }
        var chart = GenericChart.ofTraceObject(true, trace);
        var xAxis = new LinearAxis();
        xAxis.SetProperty("type", "category");
        xAxis.SetProperty("title", Title(new("latent")));
        var layout = new Layout();
        layout.SetProperty("title", Title(title));
        layout.SetProperty("xaxis", xAxis);
        return GenericChart.addLayout(layout, chart);
    }

    static DynamicObj.DynamicObj Title(string text)
    {
        var t = new DynamicObj.DynamicObj();
        t.SetProperty("text", text);
        return t;
    }
}

/// <summary>Per-dataset latent signatures (Wang et al. Fig. 9): which fine-tunes move which latents.</summary>
public static class Fingerprints
{
    /// <summary>The models × latents matrix of <see cref="DiffResult.Delta"/> for the given latents.</summary>
    public static FingerprintMatrix Build(IReadOnlyList<(string Model, DiffResult Diff)> diffs, IReadOnlyList<int> latents)
    {
        if (diffs.Count == 0) throw new ArgumentException("no diffs given");
        var values = new double[diffs.Count, latents.Count];
        for (int m = 0; m < diffs.Count; m++)
            for (int l = 0; l < latents.Count; l++)
            {
                var delta = diffs[m].Diff.Delta;
                if (latents[l] < 0 || latents[l] >= delta.Length)
                    throw new ArgumentOutOfRangeException(nameof(latents), $"latent {latents[l]} is not in the {delta.Length} latents of '{diffs[m].Model}'");
                values[m, l] = delta[latents[l]];
            }
        return new FingerprintMatrix(diffs.Select(d => d.Model).ToArray(), latents.ToArray(), values);
    }

    /// <summary>The union of every diff's <paramref name="perModel"/> largest increases, in order of first appearance.</summary>
    public static IReadOnlyList<int> TopLatents(IEnumerable<DiffResult> diffs, int perModel = 10) =>
        diffs.SelectMany(d => d.Increases(perModel).Select(r => r.Latent)).Distinct().ToArray();
}
