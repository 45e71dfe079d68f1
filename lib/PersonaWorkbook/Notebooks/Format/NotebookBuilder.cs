using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace PersonaWorkbook.Notebooks.Format;

/// <summary>
/// Builds a notebook in the .NET Interactive C# format (nbformat 4.5, kernelspec .net-csharp, Polyglot kernel
/// info). Cell ids derive from position and source, so regenerating an unchanged notebook gives the same file.
/// </summary>
/// <example><code>
/// new NotebookBuilder().Markdown("# Loss").Code("var seed = 1;", "parameters").Code("chart", "figure:loss").Build().Save(path);
/// </code></example>
public sealed class NotebookBuilder
{
    readonly List<NotebookCell> _cells = [];

    public NotebookBuilder Code(string source, params string[] tags)
    {
        _cells.Add(NotebookCell.Code(source, CellId(source), tags));
        return this;
    }

    public NotebookBuilder Markdown(string source, params string[] tags)
    {
        _cells.Add(NotebookCell.Markdown(source, CellId(source), tags));
        return this;
    }

    string CellId(string source)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{_cells.Count}\n{source}"));
        return Convert.ToHexStringLower(hash)[..8];
    }

    public Notebook Build() => Notebook.Create(new JsonObject
    {
        ["cells"] = new JsonArray(_cells.Select(c => (JsonNode)c.Json.DeepClone()).ToArray()),
        ["metadata"] = DotNetMetadata(),
        ["nbformat"] = 4,
        ["nbformat_minor"] = 5,
    });

    /// <summary>Notebook metadata as .NET Interactive writes it for a C# notebook.</summary>
    public static JsonObject DotNetMetadata() => new()
    {
        ["kernelspec"] = new JsonObject { ["display_name"] = ".NET (C#)", ["language"] = "C#", ["name"] = ".net-csharp" },
        ["language_info"] = new JsonObject
        {
            ["file_extension"] = ".cs", ["mimetype"] = "text/x-csharp", ["name"] = "C#", ["pygments_lexer"] = "csharp", ["version"] = "13.0",
        },
        ["polyglot_notebook"] = new JsonObject
        {
            ["kernelInfo"] = new JsonObject
            {
                ["defaultKernelName"] = "csharp",
                ["items"] = new JsonArray(new JsonObject { ["aliases"] = new JsonArray(), ["name"] = "csharp" }),
            },
        },
    };
}
