using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using PersonaWorkbook.Notebooks.Execution;
using PersonaWorkbook.Notebooks.Format;

namespace PersonaWorkbook.Notebooks.Running;

/// <summary>
/// A standalone HTML page of an executed notebook that needs no network: charts are drawn from their plotly
/// figure JSON with plotly.js inlined once in the head.
/// </summary>
public static class HtmlReport
{
    public static string Render(Notebook executed, string title)
    {
        var body = new StringBuilder();
        for (int i = 0; i < executed.Cells.Count; i++)
        {
            var cell = executed.Cells[i];
            if (cell.CellType == "markdown")
            {
                body.Append("<section class=\"markdown\">").Append(Markdown.ToHtml(cell.Source)).Append("</section>\n");
                continue;
            }
            if (!cell.IsCode) continue;
            var label = cell.ExecutionCount is { } n ? n.ToString() : " ";
            body.Append($"<section class=\"cell\" id=\"cell-{i + 1}\"><div class=\"prompt\">[{label}]</div>")
                .Append("<pre class=\"source\">").Append(WebUtility.HtmlEncode(cell.Source)).Append("</pre>\n");
            foreach (var output in cell.Outputs!.OfType<JsonObject>()) body.Append(Output(output));
            body.Append("</section>\n");
        }
        return Page(title, body.ToString());
    }

    /// <summary>
    /// A page around <paramref name="body"/>, with plotly.js inlined when the body draws charts. <paramref name="forImage"/>
    /// hides Plotly's toolbar (zoom, pan, download icons), which means nothing in a PNG.
    /// </summary>
    public static string Page(string title, string body, bool forImage = false)
    {
        var plotly = body.Contains("class=\"workbook-plotly\"", StringComparison.Ordinal) ? PlotlyHtml.LibraryScript() : "";
        var style = forImage ? Style + "\n.modebar-container { display: none !important; }" : Style;
        return $"""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>{WebUtility.HtmlEncode(title)}</title>
            <style>{style}</style>
            {plotly}</head>
            <body>
            <h1 class="title">{WebUtility.HtmlEncode(title)}</h1>
            {body}
            </body>
            </html>

            """;
    }

    /// <summary>The HTML for one nbformat output.</summary>
    public static string Output(JsonObject output)
    {
        switch ((string?)output["output_type"])
        {
            case "stream":
                var name = (string?)output["name"] == "stderr" ? "stderr" : "stdout";
                return $"<pre class=\"stream {name}\">{WebUtility.HtmlEncode(NotebookJson.Text(output["text"]) ?? "")}</pre>\n";
            case "error":
                var traceback = output["traceback"] is JsonArray t ? string.Join("\n", t.Select(l => (string?)l)) : "";
                return $"<pre class=\"error\">{WebUtility.HtmlEncode($"{output["ename"]}: {output["evalue"]}\n{traceback}")}</pre>\n";
            case "display_data" or "execute_result" when output["data"] is JsonObject data:
                return $"<div class=\"output\">{Rich(data)}</div>\n";
            default:
                return "";
        }
    }

    static string Rich(JsonObject data)
    {
        if (data[PlotlyHtml.MimeType] is JsonObject figure) return PlotlyHtml.ChartDiv(figure);
        // A chart shown as text/html only may carry the library itself; the page already has it once, in the head.
        if (NotebookJson.Text(data["text/html"]) is { } html) return html.Replace(PlotlyHtml.LibraryScript(), "", StringComparison.Ordinal);
        if (NotebookJson.Text(data["image/svg+xml"]) is { } svg) return svg;
        if (NotebookJson.Text(data["image/png"]) is { } png) return $"<img alt=\"figure\" src=\"data:image/png;base64,{png.Replace("\n", "")}\">";
        if (NotebookJson.Text(data["text/plain"]) is { } plain) return $"<pre>{WebUtility.HtmlEncode(plain)}</pre>";
        return "";
    }

    const string Style = """
        body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
        .cell { margin: 1.2em 0; }
        .prompt { color: #888; font: 12px monospace; }
        pre { padding: .6em; overflow-x: auto; margin: .3em 0; }
        pre.source { background: #f5f6f8; border-left: 3px solid #5b8def; }
        pre.stderr { background: #fff6e5; }
        pre.error { background: #fdecea; color: #8a1c12; }
        table.workbook-table { border-collapse: collapse; font-size: 13px; }
        table.workbook-table td, table.workbook-table th { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
        .workbook-caption { color: #666; font-size: 12px; }
        """;
}
