using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace PersonaWorkbook.Notebooks.Running;

/// <summary>
/// The markdown the notebooks use, as HTML for the report: headings, paragraphs, fenced code, bullet and
/// numbered lists, inline code, bold, italics and links. No markdown package is available to the workbook,
/// and notebook prose needs no more.
/// </summary>
internal static partial class Markdown
{
    public static string ToHtml(string markdown)
    {
        var html = new StringBuilder();
        var paragraph = new List<string>();
        string? list = null;
        var lines = markdown.Replace("\r\n", "\n").Split('\n');

        void EndParagraph()
        {
            if (paragraph.Count > 0) html.Append("<p>").Append(Inline(string.Join(" ", paragraph))).Append("</p>\n");
            paragraph.Clear();
        }
        void EndList()
        {
            if (list is not null) html.Append("</").Append(list).Append(">\n");
            list = null;
        }

        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                EndParagraph(); EndList();
                var code = new List<string>();
                for (i++; i < lines.Length && !lines[i].TrimStart().StartsWith("```", StringComparison.Ordinal); i++) code.Add(lines[i]);
                html.Append("<pre><code>").Append(WebUtility.HtmlEncode(string.Join("\n", code))).Append("</code></pre>\n");
                continue;
            }
            if (Heading().Match(line) is { Success: true } heading)
            {
                EndParagraph(); EndList();
                var level = heading.Groups[1].Length;
                html.Append($"<h{level}>").Append(Inline(heading.Groups[2].Value)).Append($"</h{level}>\n");
                continue;
            }
            if (ListItem().Match(line) is { Success: true } item)
            {
                EndParagraph();
                var kind = char.IsDigit(item.Groups[1].Value[0]) ? "ol" : "ul";
                if (list != kind) { EndList(); html.Append('<').Append(kind).Append(">\n"); list = kind; }
                html.Append("<li>").Append(Inline(item.Groups[2].Value)).Append("</li>\n");
                continue;
            }
            if (string.IsNullOrWhiteSpace(line)) { EndParagraph(); EndList(); continue; }
            EndList();
            paragraph.Add(line.Trim());
        }
        EndParagraph(); EndList();
        return html.ToString();
    }

    static string Inline(string text)
    {
        var encoded = WebUtility.HtmlEncode(text);
        encoded = InlineCode().Replace(encoded, "<code>$1</code>");
        encoded = Bold().Replace(encoded, "<strong>$1</strong>");
        encoded = Italic().Replace(encoded, "<em>$1</em>");
        return Link().Replace(encoded, "<a href=\"$2\">$1</a>");
    }

    [GeneratedRegex(@"^(#{1,6})\s+(.*?)\s*#*\s*$")] private static partial Regex Heading();
    [GeneratedRegex(@"^\s*([-*+]|\d+[.)])\s+(.*)$")] private static partial Regex ListItem();
    [GeneratedRegex(@"`([^`]+)`")] private static partial Regex InlineCode();
    [GeneratedRegex(@"\*\*(.+?)\*\*")] private static partial Regex Bold();
    [GeneratedRegex(@"(?<![*\w])[*_](?![*\s])(.+?)(?<![*\s])[*_](?![*\w])")] private static partial Regex Italic();
    [GeneratedRegex(@"\[([^\]]+)\]\(([^)\s]+)\)")] private static partial Regex Link();
}
