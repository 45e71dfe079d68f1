using System.Text.Json.Nodes;

namespace PersonaWorkbook.Notebooks.Execution;

/// <summary>
/// One displayable value in several representations, keyed by mime type. A value is a string, or a
/// <see cref="JsonNode"/> for JSON mime types (application/json, *+json), which nbformat stores as JSON, not text.
/// </summary>
public sealed class MimeBundle : Dictionary<string, object>
{
    public static bool IsJsonMimeType(string mimeType) =>
        mimeType == "application/json" || mimeType.EndsWith("+json", StringComparison.Ordinal);
}

/// <summary>Where a running cell's outputs go: the notebook runner records them, the Jupyter kernel publishes them.</summary>
public interface ICellOutputSink
{
    /// <summary>Console text; <paramref name="name"/> is "stdout" or "stderr".</summary>
    void Stream(string name, string text);

    /// <summary>display() / .Display(); a repeated <paramref name="displayId"/> updates that earlier display in place.</summary>
    void Display(MimeBundle data, string? displayId = null);

    /// <summary>The value of the cell's trailing expression.</summary>
    void Result(MimeBundle data, int executionCount);

    void Error(string ename, string evalue, IReadOnlyList<string> traceback);
}

public sealed record CellRunResult(bool Succeeded, int ExecutionCount, TimeSpan Elapsed);

public sealed record ExecutorOptions
{
    /// <summary>Base directory for <c>#r "x.dll"</c> and <c>#load "f.csx"</c>.</summary>
    public string WorkingDirectory { get; init; } = Environment.CurrentDirectory;

    /// <summary>Wall-time limit per cell; null for none.</summary>
    public TimeSpan? CellTimeout { get; init; }
}
