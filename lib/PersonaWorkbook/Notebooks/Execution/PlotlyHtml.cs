using System.Net;
using System.Text.Json.Nodes;
using Plotly.NET;

namespace PersonaWorkbook.Notebooks.Execution;

/// <summary>
/// Offline chart HTML: plotly.js comes from the copy Plotly.NET embeds (no CDN), and each chart is a div plus a
/// script that waits for <c>Plotly</c> so the library can be included once per document, anywhere in it.
/// </summary>
public static class PlotlyHtml
{
    public const string MimeType = "application/vnd.plotly.v1+json";

    static readonly Lazy<(string Version, string Source)> Library = new(LoadLibrary);

    /// <summary>The plotly.js version the workbook ships, e.g. "2.28.0".</summary>
    public static string Version => Library.Value.Version;

    /// <summary>
    /// A script element holding all of plotly.js. It runs with AMD/CommonJS hidden so it always defines the
    /// global <c>Plotly</c>, also in pages that load require.js (classic Jupyter).
    /// </summary>
    public static string LibraryScript() =>
        $"<script type=\"text/javascript\">/* plotly.js {Version}, MIT license, embedded by the workbook */\n" +
        "(function (define, module, exports) {\n" + Library.Value.Source + "\n}).call(window, undefined, undefined, undefined);\n</script>\n";

    /// <summary>The figure JSON ({data, layout, frames}) of a chart.</summary>
    public static JsonObject FigureJson(GenericChart chart) =>
        JsonNode.Parse(GenericChart.toFigureJson(chart))!.AsObject();

    /// <summary>A div and a script drawing <paramref name="figure"/> once plotly.js is present in the page.</summary>
    public static string ChartDiv(JsonNode figure)
    {
        var id = "workbook-plot-" + Guid.NewGuid().ToString("N");
        // "</" inside a script element would end it early; "<\/" is the same string to JavaScript.
        var json = figure.ToJsonString().Replace("</", "<\\/", StringComparison.Ordinal);
        return $"<div id=\"{WebUtility.HtmlEncode(id)}\" class=\"workbook-plotly\"></div>\n" +
               "<script type=\"text/javascript\">\n" +
               "(function draw() {\n" +
               "  if (typeof Plotly === 'undefined') { setTimeout(draw, 50); return; }\n" +
               $"  var figure = {json};\n" +
               $"  Plotly.newPlot('{id}', figure.data, figure.layout || {{}}, {{responsive: true}});\n" +
               "})();\n</script>\n";
    }

    static (string, string) LoadLibrary()
    {
        var assembly = typeof(GenericChart).Assembly;
        var resource = assembly.GetManifestResourceNames()
            .SingleOrDefault(n => n.StartsWith("Plotly.NET.plotly-", StringComparison.Ordinal) && n.EndsWith(".min.js", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"{assembly.GetName().Name} {HostAssemblies.VersionOf(assembly)} has no embedded plotly-*.min.js resource.");
        using var stream = assembly.GetManifestResourceStream(resource)!;
        var source = new StreamReader(stream).ReadToEnd();
        if (source.Contains("</script", StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"{resource} contains '</script' and cannot be inlined in a script element.");
        var version = resource["Plotly.NET.plotly-".Length..^".min.js".Length];
        return (version, source);
    }
}
