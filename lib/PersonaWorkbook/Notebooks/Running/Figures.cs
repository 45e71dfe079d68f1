using System.Text;
using System.Text.Json.Nodes;
using PersonaWorkbook.Notebooks.Execution;
using PersonaWorkbook.Notebooks.Format;

namespace PersonaWorkbook.Notebooks.Running;

/// <summary>A cell tagged <c>figure:&lt;id&gt;</c>.</summary>
public sealed record FigureCell(string Id, string NotebookPath, int CellIndex);

public sealed record FigureOutput(string Id, string HtmlPath, string? PngPath, string? PngSkipped, NotebookRunResult Run);

/// <summary>
/// Rerunning one figure. A figure is the cells tagged <c>figure:&lt;id&gt;</c>; to draw it, every code cell up to
/// its last tagged cell runs except cells tagged for other figures (setup cells untagged, figure cells self-contained).
/// </summary>
public static class Figures
{
    public const string TagPrefix = "figure:";

    public static IEnumerable<string> IdsOf(NotebookCell cell) =>
        cell.Tags.Where(t => t.StartsWith(TagPrefix, StringComparison.Ordinal) && t.Length > TagPrefix.Length).Select(t => t[TagPrefix.Length..]);

    /// <summary>Every figure cell in the notebooks, in file and cell order.</summary>
    public static IReadOnlyList<FigureCell> Find(IEnumerable<string> notebookPaths) =>
        notebookPaths.SelectMany(path =>
        {
            var notebook = Notebook.Load(path);
            return notebook.Cells.SelectMany((cell, i) => IdsOf(cell).Select(id => new FigureCell(id, path, i)));
        }).ToList();

    /// <summary>The cells to run for figure <paramref name="id"/> (see the class summary for the rule).</summary>
    public static Func<Notebook, int, bool> CellsFor(string id) => (notebook, index) =>
    {
        var last = -1;
        for (int i = 0; i < notebook.Cells.Count; i++) if (IdsOf(notebook.Cells[i]).Contains(id)) last = i;
        if (index > last) return false;
        var ids = IdsOf(notebook.Cells[index]).ToList();
        return ids.Count == 0 || ids.Contains(id);
    };

    /// <summary>
    /// Runs what figure <paramref name="id"/> needs and writes &lt;out&gt;/&lt;id&gt;.html (offline) and, when chromium
    /// is installed, &lt;id&gt;.png. Fails naming the cell when a needed cell fails or the figure shows nothing.
    /// </summary>
    public static async Task<FigureOutput> RenderAsync(string notebookPath, string id, string outDirectory,
        NotebookRunOptions? options = null, CancellationToken cancellationToken = default)
    {
        var notebook = Notebook.Load(notebookPath);
        if (!notebook.Cells.Any(c => IdsOf(c).Contains(id)))
            throw new ArgumentException($"{notebookPath}: no cell is tagged '{TagPrefix}{id}'");
        var run = await NotebookRunner.RunAsync(notebook, (options ?? new NotebookRunOptions()) with { Include = CellsFor(id) }, cancellationToken);
        if (!run.Succeeded)
            throw new InvalidOperationException($"figure '{id}' ({notebookPath}): {string.Join("; ", run.Failures)}");

        var shown = run.Executed.Cells.Where(c => IdsOf(c).Contains(id))
            .SelectMany(c => c.Outputs!.OfType<JsonObject>())
            .Where(o => (string?)o["output_type"] is "display_data" or "execute_result")
            .ToList();
        if (shown.Count == 0)
            throw new InvalidOperationException($"figure '{id}' ({notebookPath}): its cells ran but displayed nothing");

        var body = new StringBuilder();
        foreach (var output in shown) body.Append(HtmlReport.Output(output));
        var html = Path.Combine(outDirectory, id + ".html");
        AtomicFile.WriteAllText(html, HtmlReport.Page($"{id} ({Path.GetFileName(notebookPath)})", body.ToString()));

        var (width, height) = Size(shown);
        var png = Path.Combine(outDirectory, id + ".png");
        var chromium = Chromium.Find();
        if (chromium is null) return new FigureOutput(id, html, null, "chromium is not installed", run);
        var forImage = Path.Combine(outDirectory, $".{id}.{Guid.NewGuid():N}.png.html");
        try
        {
            AtomicFile.WriteAllText(forImage, HtmlReport.Page($"{id} ({Path.GetFileName(notebookPath)})", body.ToString(), forImage: true));
            await Chromium.ScreenshotAsync(chromium, forImage, png, width, height, cancellationToken);
        }
        finally { File.Delete(forImage); }
        return new FigureOutput(id, html, png, null, run);
    }

    // Window size for the screenshot: the charts' own layout size plus the page's margins and title.
    static (int Width, int Height) Size(IEnumerable<JsonObject> outputs)
    {
        int width = 0, height = 120;
        foreach (var output in outputs)
        {
            var layout = output["data"]?[PlotlyHtml.MimeType]?["layout"];
            var w = layout?["width"] is JsonValue wv && wv.TryGetValue<double>(out var ww) ? (int)ww : 700;
            var h = layout?["height"] is JsonValue hv && hv.TryGetValue<double>(out var hh) ? (int)hh : 450;
            width = Math.Max(width, w);
            height += h + 20;
        }
        return (Math.Max(width + 80, 400), height);
    }
}
