using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Notebooks.Format;

namespace PersonaWorkbook.Notebooks.Running;

/// <summary>What <c>workbook run</c> leaves in its output folder for one notebook.</summary>
public sealed record NotebookOutputFiles(string Notebook, string Report, string Metrics);

public static class NotebookOutputs
{
    /// <summary>
    /// Writes &lt;out&gt;/&lt;name&gt;.ipynb (executed), &lt;name&gt;.html (offline report) and &lt;name&gt;.metrics.json
    /// (every <see cref="Results.Record"/> call, plus which cells failed).
    /// </summary>
    public static NotebookOutputFiles Write(string sourcePath, NotebookRunResult run, string outDirectory,
        IReadOnlyList<KeyValuePair<string, string>> parameters)
    {
        var name = Path.GetFileNameWithoutExtension(sourcePath);
        var files = new NotebookOutputFiles(
            Path.Combine(outDirectory, name + ".ipynb"), Path.Combine(outDirectory, name + ".html"), Path.Combine(outDirectory, name + ".metrics.json"));
        if (string.Equals(Path.GetFullPath(files.Notebook), Path.GetFullPath(sourcePath), StringComparison.Ordinal))
            throw new ArgumentException($"writing the executed notebook to {outDirectory} would overwrite {sourcePath}; choose another --out");

        run.Executed.Save(files.Notebook);
        AtomicFile.WriteAllText(files.Report, HtmlReport.Render(run.Executed, name));
        AtomicFile.WriteAllText(files.Metrics, Metrics(sourcePath, run, parameters).ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
        return files;
    }

    static JsonObject Metrics(string sourcePath, NotebookRunResult run, IReadOnlyList<KeyValuePair<string, string>> parameters)
    {
        var given = new JsonObject();
        foreach (var (k, v) in parameters) given[k] = v;
        return new JsonObject
        {
            ["notebook"] = Path.GetFileName(sourcePath),
            ["completed_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
            ["elapsed_s"] = Math.Round(run.Elapsed.TotalSeconds, 3),
            ["succeeded"] = run.Succeeded,
            ["parameters"] = given,
            ["failed_cells"] = new JsonArray(run.Failures.Select(f => (JsonNode)new JsonObject
            {
                ["cell"] = f.CellIndex + 1, ["ename"] = f.Ename, ["evalue"] = f.Evalue,
            }).ToArray()),
            ["metrics"] = new JsonArray(run.Results.Select(r => (JsonNode)new JsonObject
            {
                ["name"] = r.Name, ["value"] = r.Value, ["ci_low"] = r.CiLow, ["ci_high"] = r.CiHigh, ["note"] = r.Note,
                ["execution_count"] = r.ExecutionCount,
            }).ToArray()),
        };
    }
}
