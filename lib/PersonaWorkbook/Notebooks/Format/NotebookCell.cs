using System.Text.Json.Nodes;

namespace PersonaWorkbook.Notebooks.Format;

/// <summary>A notebook cell over its JSON object.</summary>
public sealed class NotebookCell
{
    internal NotebookCell(JsonObject json) => Json = json;

    public JsonObject Json { get; }

    /// <summary>"code", "markdown" or "raw".</summary>
    public string CellType => Json["cell_type"]!.GetValue<string>();

    public bool IsCode => CellType == "code";

    public string? Id => Json["id"]?.GetValue<string>();

    public JsonObject Metadata => Json["metadata"]!.AsObject();

    public string Source
    {
        get => NotebookJson.Text(Json["source"])!;
        set => Json["source"] = NotebookJson.Lines(value);
    }

    public IReadOnlyList<string> Tags =>
        Metadata["tags"] is JsonArray tags ? tags.OfType<JsonValue>().Select(t => t.GetValue<string>()).ToArray() : [];

    public bool HasTag(string tag) => Tags.Contains(tag, StringComparer.Ordinal);

    /// <summary>The cell's kernel as Polyglot Notebooks reads it: polyglot_notebook.kernelName, then dotnet_interactive.language.</summary>
    public string? KernelName =>
        (Metadata["polyglot_notebook"]?["kernelName"] ?? Metadata["dotnet_interactive"]?["language"]) is JsonValue v &&
        v.TryGetValue<string>(out var name) ? name : null;

    /// <summary>Code cells' outputs; null for markdown and raw cells.</summary>
    public JsonArray? Outputs => Json["outputs"] as JsonArray;

    public int? ExecutionCount
    {
        get => Json["execution_count"] is JsonValue v && v.TryGetValue<int>(out var n) ? n : null;
        set => Json["execution_count"] = value;
    }

    /// <summary>Replaces outputs and execution count (code cells only).</summary>
    public void SetOutputs(JsonArray outputs, int? executionCount)
    {
        if (!IsCode) throw new InvalidOperationException($"cell {Id ?? "?"} is a {CellType} cell and cannot hold outputs");
        Json["outputs"] = outputs;
        ExecutionCount = executionCount;
    }

    public static NotebookCell Code(string source, string id, params string[] tags) =>
        new(new JsonObject
        {
            ["cell_type"] = "code",
            ["execution_count"] = null,
            ["id"] = id,
            ["metadata"] = CellMetadata(tags, code: true),
            ["outputs"] = new JsonArray(),
            ["source"] = NotebookJson.Lines(source),
        });

    public static NotebookCell Markdown(string source, string id, params string[] tags) =>
        new(new JsonObject
        {
            ["cell_type"] = "markdown",
            ["id"] = id,
            ["metadata"] = CellMetadata(tags, code: false),
            ["source"] = NotebookJson.Lines(source),
        });

    // Both the old and the new .NET Interactive key on code cells, as its writer does, so Polyglot Notebooks
    // opens the cell as C# whichever version reads it.
    static JsonObject CellMetadata(string[] tags, bool code)
    {
        var metadata = new JsonObject();
        if (code)
        {
            metadata["dotnet_interactive"] = new JsonObject { ["language"] = "csharp" };
            metadata["polyglot_notebook"] = new JsonObject { ["kernelName"] = "csharp" };
        }
        if (tags.Length > 0) metadata["tags"] = new JsonArray(tags.Select(t => (JsonNode)t).ToArray());
        return metadata;
    }
}
