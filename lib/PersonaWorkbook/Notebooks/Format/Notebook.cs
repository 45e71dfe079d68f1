using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PersonaWorkbook.Notebooks.Format;

/// <summary>
/// An .ipynb notebook (nbformat 4) over its JSON tree, so fields this class does not know survive a rewrite.
/// Saving an unchanged notebook gives back the original bytes.
/// </summary>
public sealed class Notebook
{
    readonly byte[]? _originalBytes;
    readonly string? _pristine;  // the original tree as this writer would print it
    readonly List<NotebookCell> _cells;

    Notebook(JsonObject root, string? path, JsonLayout layout, byte[]? originalBytes)
    {
        Root = root;
        Path = path;
        Layout = layout;
        _cells = root["cells"]!.AsArray().Select(c => new NotebookCell(c!.AsObject())).ToList();
        _originalBytes = originalBytes;
        _pristine = originalBytes is null ? null : NotebookJson.Serialize(root, layout);
    }

    internal static Notebook Create(JsonObject root) => new(root, null, JsonLayout.Jupyter, null);

    /// <summary>The file it was read from; null for a built notebook.</summary>
    public string? Path { get; }

    public JsonObject Root { get; }

    public JsonLayout Layout { get; }

    public JsonObject Metadata => Root["metadata"]!.AsObject();

    public IReadOnlyList<NotebookCell> Cells => _cells;

    /// <summary>The file name without extension, or "notebook" for one never saved.</summary>
    public string Name => Path is null ? "notebook" : System.IO.Path.GetFileNameWithoutExtension(Path);

    public void InsertCell(int index, NotebookCell cell)
    {
        Root["cells"]!.AsArray().Insert(index, cell.Json);
        _cells.Insert(index, cell);
    }

    public void RemoveCell(int index)
    {
        Root["cells"]!.AsArray().RemoveAt(index);
        _cells.RemoveAt(index);
    }

    public static Notebook Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (FileNotFoundException) { throw new FileNotFoundException($"{path}: notebook not found", path); }
        return Parse(bytes, path);
    }

    public static Notebook Parse(string text, string? path = null) => Parse(Encoding.UTF8.GetBytes(text), path);

    public static Notebook Parse(byte[] bytes, string? path = null)
    {
        var where = path ?? "notebook";
        var text = new UTF8Encoding(false, true).GetString(bytes);
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException e)
        {
            var reason = e.Message.Split(" LineNumber:", 2)[0].Split(" Path:", 2)[0].TrimEnd();
            throw new NotebookFormatException(
                $"{where}: not valid JSON at line {(e.LineNumber ?? 0) + 1}, column {(e.BytePositionInLine ?? 0) + 1}: {reason}");
        }
        if (node is not JsonObject root) throw new NotebookFormatException($"{where}: the top level must be a JSON object");
        Validate(root, where);
        return new Notebook(root, path, JsonLayout.Detect(text), bytes);
    }

    static void Validate(JsonObject root, string where)
    {
        if (!root.TryGetPropertyValue("nbformat", out var format) || format is not JsonValue fv || !fv.TryGetValue<int>(out var major))
            throw new NotebookFormatException($"{where}: missing or non-integer 'nbformat' (expected 4)");
        if (major != 4) throw new NotebookFormatException($"{where}: nbformat is {major}; only nbformat 4 is supported");
        if (root["nbformat_minor"] is not JsonValue minor || !minor.TryGetValue<int>(out _))
            throw new NotebookFormatException($"{where}: missing or non-integer 'nbformat_minor'");
        if (root["metadata"] is not JsonObject) throw new NotebookFormatException($"{where}: missing 'metadata' object");
        if (!root.TryGetPropertyValue("cells", out var cells)) throw new NotebookFormatException($"{where}: missing 'cells'");
        if (cells is not JsonArray array) throw new NotebookFormatException($"{where}: 'cells' must be an array");
        for (int i = 0; i < array.Count; i++)
        {
            var at = $"{where}: cells[{i}]";
            if (array[i] is not JsonObject cell) throw new NotebookFormatException($"{at} is not an object");
            var type = cell["cell_type"] is JsonValue tv && tv.TryGetValue<string>(out var t) ? t : null;
            if (type is not ("code" or "markdown" or "raw"))
                throw new NotebookFormatException($"{at}: 'cell_type' must be \"code\", \"markdown\" or \"raw\", got {cell["cell_type"]?.ToJsonString() ?? "nothing"}");
            if (!cell.ContainsKey("source")) throw new NotebookFormatException($"{at} ({type}) has no 'source'");
            if (NotebookJson.Text(cell["source"]) is null)
                throw new NotebookFormatException($"{at} ({type}): 'source' must be a string or an array of strings");
            if (cell["metadata"] is not JsonObject) throw new NotebookFormatException($"{at} ({type}) has no 'metadata' object");
            if (type != "code") continue;
            if (cell["outputs"] is not JsonArray) throw new NotebookFormatException($"{at} (code) has no 'outputs' array");
            if (!cell.TryGetPropertyValue("execution_count", out var count) ||
                (count is not null && !(count is JsonValue cv && cv.TryGetValue<int>(out _))))
                throw new NotebookFormatException($"{at} (code): 'execution_count' must be an integer or null");
        }
    }

    /// <summary>The file text: the original bytes' text when nothing changed, else the tree in the original layout.</summary>
    public string ToJson()
    {
        var text = NotebookJson.Serialize(Root, Layout);
        return _originalBytes is not null && text == _pristine ? Encoding.UTF8.GetString(_originalBytes).TrimStart('\uFEFF') : text;
    }

    /// <summary>Writes atomically (temp file, then rename); unchanged notebooks are written byte for byte as read.</summary>
    public void Save(string path)
    {
        var text = NotebookJson.Serialize(Root, Layout);
        var bytes = _originalBytes is not null && text == _pristine ? _originalBytes : new UTF8Encoding(false).GetBytes(text);
        AtomicFile.WriteAllBytes(path, bytes);
    }

    /// <summary>A deep copy that no longer remembers the original bytes.</summary>
    public Notebook Clone() => new(Root.DeepClone().AsObject(), Path, Layout, null);
}
