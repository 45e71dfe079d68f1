using System.Text;
using System.Text.Json.Nodes;
using PersonaWorkbook.Notebooks.Execution;
using PersonaWorkbook.Notebooks.Format;

namespace PersonaWorkbook.Notebooks.Running;

/// <summary>
/// Collects one cell's outputs as nbformat output objects: consecutive stream text of one name merges into one
/// output, a repeated display id replaces its earlier display, JSON mime types stay JSON.
/// </summary>
public sealed class OutputRecorder : ICellOutputSink
{
    sealed class Entry
    {
        public required JsonObject Json;
        public StringBuilder? StreamText;
        public string? DisplayId;
    }

    readonly List<Entry> _entries = [];
    readonly object _lock = new();

    /// <summary>The first error reported, if any.</summary>
    public (string Ename, string Evalue)? FirstError { get; private set; }

    public void Stream(string name, string text)
    {
        lock (_lock)
        {
            if (_entries.Count > 0 && _entries[^1] is { StreamText: { } sb } last && (string)last.Json["name"]! == name)
            {
                sb.Append(text);
                return;
            }
            _entries.Add(new Entry
            {
                Json = new JsonObject { ["name"] = name, ["output_type"] = "stream" },
                StreamText = new StringBuilder(text),
            });
        }
    }

    public void Display(MimeBundle data, string? displayId = null)
    {
        lock (_lock)
        {
            var json = new JsonObject { ["data"] = Data(data), ["metadata"] = new JsonObject(), ["output_type"] = "display_data" };
            var earlier = displayId is null ? -1 : _entries.FindIndex(e => e.DisplayId == displayId);
            if (earlier >= 0) _entries[earlier].Json = json;
            else _entries.Add(new Entry { Json = json, DisplayId = displayId });
        }
    }

    public void Result(MimeBundle data, int executionCount)
    {
        lock (_lock)
            _entries.Add(new Entry
            {
                Json = new JsonObject
                {
                    ["data"] = Data(data), ["execution_count"] = executionCount, ["metadata"] = new JsonObject(), ["output_type"] = "execute_result",
                },
            });
    }

    public void Error(string ename, string evalue, IReadOnlyList<string> traceback)
    {
        lock (_lock)
        {
            FirstError ??= (ename, evalue);
            _entries.Add(new Entry
            {
                Json = new JsonObject
                {
                    ["ename"] = ename, ["evalue"] = evalue, ["output_type"] = "error",
                    ["traceback"] = new JsonArray(traceback.Select(l => (JsonNode)l).ToArray()),
                },
            });
        }
    }

    /// <summary>The outputs so far, as a fresh array (the recorder keeps working: a later cell may update a display).</summary>
    public JsonArray ToJson()
    {
        lock (_lock)
        {
            var array = new JsonArray();
            foreach (var e in _entries)
            {
                var json = e.Json.DeepClone().AsObject();
                if (e.StreamText is not null) json["text"] = NotebookJson.Lines(e.StreamText.ToString());
                array.Add(json);
            }
            return array;
        }
    }

    static JsonObject Data(MimeBundle bundle)
    {
        var data = new JsonObject();
        foreach (var (mime, value) in bundle.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            data[mime] = value switch
            {
                JsonNode node => node.DeepClone(),
                string s when MimeBundle.IsJsonMimeType(mime) => JsonNode.Parse(s),
                string s => NotebookJson.Lines(s),
                _ => throw new ArgumentException($"mime bundle value for {mime} is a {value.GetType().Name}; expected a string or a JsonNode"),
            };
        return data;
    }
}
