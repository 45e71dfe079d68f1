using System.Globalization;
using System.Net;
using System.Text;
using PersonaWorkbook.Diffing;

namespace PersonaWorkbook.Dashboards;

/// <summary>
/// Self-contained HTML for dashboards: inline CSS, the histogram as inline SVG, no scripts and no external references,
/// so it renders offline in notebooks, browsers and CI artifacts alike.
/// </summary>
public static class DashboardHtml
{
    const string Style = """
        <style>
        .wb-dash { font-family: system-ui, sans-serif; font-size: 13px; margin: 0.5em 0 1.5em 0; }
        .wb-dash h3 { margin: 0.2em 0; }
        .wb-dash h4 { margin: 0.8em 0 0.3em 0; }
        .wb-dash .summary { color: #444; }
        .wb-dash .cols { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
        .wb-dash table { border-collapse: collapse; }
        .wb-dash td, .wb-dash th { padding: 1px 6px; text-align: left; }
        .wb-dash td.num { text-align: right; font-variant-numeric: tabular-nums; }
        .wb-dash .bar { display: inline-block; height: 10px; background: #4a7bd0; vertical-align: middle; }
        .wb-dash .ctx { font-family: ui-monospace, monospace; white-space: nowrap; overflow-x: auto; line-height: 1.7; }
        .wb-dash .ctx .act { display: inline-block; width: 5.5em; color: #666; }
        .wb-dash .ctx .who { display: inline-block; width: 6.5em; color: #666; }
        .wb-dash .tok { padding: 1px 1px; border-radius: 2px; }
        .wb-dash .focus { outline: 1px solid #b33; font-weight: bold; }
        .wb-dash .pos { color: #1a6b1a; } .wb-dash .neg { color: #a11; }
        </style>
        """;

    /// <summary>One dashboard as a full HTML document, showing its <paramref name="shown"/> top contexts.</summary>
    public static string Render(LatentDashboard dashboard, int shown = 20) => Render([dashboard], shown);

    /// <summary>Several dashboards in one HTML document.</summary>
    public static string Render(IEnumerable<LatentDashboard> dashboards, int shown = 20)
    {
        var sb = new StringBuilder("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>latent dashboards</title>\n");
        sb.Append(Style).Append("</head><body>\n");
        foreach (var d in dashboards) sb.Append(Body(d, shown));
        return sb.Append("</body></html>\n").ToString();
    }

    /// <summary>One dashboard as an HTML fragment (its own style element included), for a notebook's text/html output.</summary>
    public static string Fragment(LatentDashboard d, int shown = 20) => Style + Body(d, shown);

    static string Body(LatentDashboard d, int shown)
    {
        var sb = new StringBuilder("<div class=\"wb-dash\">\n");
        sb.Append($"<h3>Latent {d.Latent}</h3>\n<div class=\"summary\">{E(d.HookName)} · {d.Documents} documents, {d.Tokens} tokens · " +
                  $"density {F(d.Density * 100, "0.###")}% ({d.FiringTokens} firing) · max {F(d.MaxActivation)}</div>\n");
        sb.Append("<div class=\"cols\">\n");

        var who = d.PurityLabel == PersonaLabel.Document ? "document label" : "acting persona of the turn";
        sb.Append($"<div><h4>Persona purity (top {d.TopContexts.Count}, {who})</h4><table>\n");
        foreach (var p in d.Purity.OrderByDescending(p => p.Share))
            sb.Append($"<tr><td>{E(p.Persona.ToString().ToLowerInvariant())}</td><td class=\"num\">{F(p.Share, "0.00")}</td>" +
                      $"<td><span class=\"bar\" style=\"width:{F(p.Share * 120, "0")}px\"></span></td></tr>\n");
        sb.Append("</table></div>\n");

        sb.Append("<div><h4>Logit effects</h4><table><tr><th class=\"pos\">+ token</th><th></th><th class=\"neg\">− token</th><th></th></tr>\n");
        for (int i = 0; i < Math.Max(d.PositiveLogits.Count, d.NegativeLogits.Count); i++)
        {
            sb.Append("<tr>");
            foreach (var (list, cls) in new[] { (d.PositiveLogits, "pos"), (d.NegativeLogits, "neg") })
                sb.Append(i < list.Count ? $"<td class=\"{cls}\">{E(list[i].Token)}</td><td class=\"num\">{F(list[i].Value, "+0.000;-0.000")}</td>" : "<td></td><td></td>");
            sb.Append("</tr>\n");
        }
        sb.Append("</table></div>\n");

        sb.Append($"<div><h4>Activations (sample of {d.SampledActivations.Count} firing tokens)</h4>{HistogramSvg(d)}</div>\n");
        sb.Append("</div>\n");

        sb.Append("<h4>Top activations</h4>\n");
        foreach (var c in d.TopContexts.Take(shown)) sb.Append(ContextLine(c, d.MaxActivation));
        foreach (var q in d.Quantiles.Reverse())
        {
            sb.Append($"<h4>Quantile {F(q.Low)} – {F(q.High)}</h4>\n");
            foreach (var c in q.Examples) sb.Append(ContextLine(c, d.MaxActivation));
        }
        return sb.Append("</div>\n").ToString();
    }

    static string ContextLine(ActivationContext c, double max)
    {
        var sb = new StringBuilder("<div class=\"ctx\">");
        sb.Append($"<span class=\"act\">{F(c.Activation)}</span><span class=\"who\" title=\"document {c.Document}, token {c.Position}; acting: {E(c.ActingPersona.ToString().ToLowerInvariant())}\">{E(c.DocumentPersona.ToString().ToLowerInvariant())}</span>");
        for (int i = 0; i < c.Tokens.Count; i++)
        {
            var a = c.Activations[i];
            var alpha = max > 0 ? Math.Clamp(a / max, 0, 1) : 0;
            var cls = i == c.Focus ? "tok focus" : "tok";
            sb.Append($"<span class=\"{cls}\" style=\"background:rgba(255,102,0,{F(alpha, "0.###")})\" title=\"{F(a)}\">{E(c.Tokens[i])}</span> ");
        }
        return sb.Append("</div>\n").ToString();
    }

    static string HistogramSvg(LatentDashboard d)
    {
        const int width = 320, height = 120, bins = 50;
        var (edges, counts) = d.Histogram(bins);
        var peak = Math.Max(1, counts.Max());
        var sb = new StringBuilder($"<svg width=\"{width}\" height=\"{height + 16}\" role=\"img\">");
        double w = (double)width / bins;
        for (int i = 0; i < bins; i++)
        {
            var h = (double)counts[i] / peak * height;
            sb.Append($"<rect x=\"{F(i * w, "0.#")}\" y=\"{F(height - h, "0.#")}\" width=\"{F(Math.Max(w - 1, 1), "0.#")}\" height=\"{F(h, "0.#")}\" fill=\"#4a7bd0\"><title>{F(edges[i])}–{F(edges[i + 1])}: {counts[i]}</title></rect>");
        }
        sb.Append($"<text x=\"0\" y=\"{height + 13}\" font-size=\"10\">0</text><text x=\"{width}\" y=\"{height + 13}\" font-size=\"10\" text-anchor=\"end\">{F(edges[^1])}</text>");
        return sb.Append("</svg>").ToString();
    }

    static string E(string s) => WebUtility.HtmlEncode(s);
    static string F(double x, string format = "0.###") => x.ToString(format, CultureInfo.InvariantCulture);
}
