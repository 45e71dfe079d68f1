using System.Net;
using System.Text;
using Deedle.Internal;
using Microsoft.DotNet.Interactive.Formatting;
using Plotly.NET;
using TorchSharp;

namespace PersonaWorkbook.Notebooks.Execution;

/// <summary>
/// Turns cell values into mime bundles. One per executor: the first chart of a session carries plotly.js in its
/// text/html, later ones rely on it being in the document already.
/// </summary>
public sealed class MimeFormatter
{
    /// <summary>Rows of a Deedle frame or series shown before the table is cut (the last few are shown too).</summary>
    public const int TableRowLimit = 25;

    const string Html = "text/html", Plain = "text/plain";

    bool _plotlyLibraryEmitted;
    readonly object _lock = new();

    /// <summary>The bundle for <paramref name="value"/>; with <paramref name="mimeTypes"/>, exactly those types.</summary>
    public MimeBundle Format(object? value, params string[] mimeTypes)
    {
        var full = Full(value);
        if (mimeTypes.Length == 0) return full;
        var chosen = new MimeBundle();
        foreach (var mime in mimeTypes)
        {
            if (full.TryGetValue(mime, out var v)) chosen[mime] = v;
            else chosen[mime] = Formatter.ToDisplayString(value, mime);
        }
        return chosen;
    }

    MimeBundle Full(object? value) => value switch
    {
        null => new MimeBundle { [Plain] = Formatter.NullString },
        string s => new MimeBundle { [Plain] = s },
        Microsoft.AspNetCore.Html.IHtmlContent html => new MimeBundle { [Html] = HtmlText(html) },
        GenericChart chart => Chart(chart),
        torch.Tensor tensor => Tensor(tensor),
        IFrameFormattable frame => Table(frame.InteractiveFormat(TableRowLimit, 20, false), ((IFsiFormattable)value).Format(),
            FrameCaption(frame.GetDimensions().Item1, frame.GetDimensions().Item2)),
        ISeriesFormattable series => Table(series.InteractiveFormat(TableRowLimit), ((IFsiFormattable)value).Format(),
            $"{series.GetKeyCount()} values"),
        _ => new MimeBundle
        {
            [Html] = Formatter.ToDisplayString(value, Html),
            [Plain] = Formatter.ToDisplayString(value, Plain),
        },
    };

    static string HtmlText(Microsoft.AspNetCore.Html.IHtmlContent html)
    {
        using var writer = new StringWriter();
        html.WriteTo(writer, System.Text.Encodings.Web.HtmlEncoder.Default);
        return writer.ToString();
    }

    MimeBundle Chart(GenericChart chart)
    {
        var figure = PlotlyHtml.FigureJson(chart);
        string library;
        lock (_lock)
        {
            library = _plotlyLibraryEmitted ? "" : PlotlyHtml.LibraryScript();
            _plotlyLibraryEmitted = true;
        }
        return new MimeBundle
        {
            [PlotlyHtml.MimeType] = figure,
            [Html] = library + PlotlyHtml.ChartDiv(figure),
        };
    }

    static MimeBundle Tensor(torch.Tensor tensor)
    {
        var summary = $"tensor [{string.Join(", ", tensor.shape)}] {tensor.dtype} on {tensor.device}";
        // The numpy style elides the middle of large dimensions, so this stays small for big tensors.
        var values = tensor.ToString(TensorStringStyle.Numpy);
        return new MimeBundle
        {
            [Plain] = summary + "\n" + values,
            [Html] = $"<div class=\"workbook-tensor\"><div><b>{WebUtility.HtmlEncode(summary)}</b></div><pre>{WebUtility.HtmlEncode(values)}</pre></div>",
        };
    }

    /// <summary>
    /// Rows without columns is almost always <c>Frame.FromRecords</c> over rows typed as <c>object</c> (a
    /// <c>List&lt;object&gt;</c> of anonymous objects): it reads the public properties of the static type, which has none.
    /// </summary>
    static string FrameCaption(int rows, int columns) => rows > 0 && columns == 0
        ? $"{rows} rows, 0 columns — Frame.FromRecords reads the properties of the rows' static type; rows typed as object have none"
        : $"{rows} rows, {columns} columns";

    // Deedle's interactive grid: the first row is the column header, ":"/"..." rows mark elided rows, and a
    // column of "->" separates keys from values (dropped: a table has borders for that).
    static MimeBundle Table(string[][] grid, string plain, string caption)
    {
        var width = grid.Length == 0 ? 0 : grid[0].Length;
        var separators = Enumerable.Range(0, width)
            .Where(c => grid.Skip(1).All(row => c < row.Length && row[c] is "->" or "") && grid.Skip(1).Any(row => row[c] == "->"))
            .ToHashSet();
        grid = grid.Select(row => row.Where((_, c) => !separators.Contains(c)).ToArray()).ToArray();
        var html = new StringBuilder("<table class=\"workbook-table\">");
        for (int r = 0; r < grid.Length; r++)
        {
            var cell = r == 0 ? "th" : "td";
            html.Append("<tr>");
            foreach (var text in grid[r])
                html.Append('<').Append(cell).Append('>').Append(WebUtility.HtmlEncode(text)).Append("</").Append(cell).Append('>');
            html.Append("</tr>");
        }
        html.Append("</table><p class=\"workbook-caption\">").Append(WebUtility.HtmlEncode(caption)).Append("</p>");
        return new MimeBundle { [Html] = html.ToString(), [Plain] = plain };
    }
}
