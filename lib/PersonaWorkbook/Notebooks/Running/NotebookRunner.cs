using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using PersonaWorkbook.Notebooks.Execution;
using PersonaWorkbook.Notebooks.Format;

namespace PersonaWorkbook.Notebooks.Running;

public sealed record NotebookRunOptions
{
    /// <summary>Overrides for the cell tagged <c>parameters</c>, in command-line order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Parameters { get; init; } = [];

    public TimeSpan? CellTimeout { get; init; }

    /// <summary>Base for <c>#r</c>/<c>#load</c>; the notebook's folder when null.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Which cells (by index in the parameter-injected notebook) to run; all when null.</summary>
    public Func<Notebook, int, bool>? Include { get; init; }

    /// <summary>Progress lines: which cell is running, how long it took, failures.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>A cell that failed; <see cref="CellIndex"/> counts all cells from 0, as the file lists them.</summary>
public sealed record CellFailure(int CellIndex, int ExecutionCount, string Ename, string Evalue)
{
    public override string ToString() => $"cell {CellIndex + 1} (execution {ExecutionCount}) failed: {Ename}: {Evalue}";
}

public sealed record NotebookRunResult(
    Notebook Executed, IReadOnlyList<CellFailure> Failures, IReadOnlyList<RecordedResult> Results, TimeSpan Elapsed)
{
    public bool Succeeded => Failures.Count == 0;
}

/// <summary>
/// Runs a notebook top to bottom in one <see cref="CellExecutor"/>, like "Run All" in Polyglot Notebooks:
/// markdown and raw cells are skipped, a failed cell is recorded and the next cells still run.
/// </summary>
public static class NotebookRunner
{
    public static async Task<NotebookRunResult> RunAsync(Notebook notebook, NotebookRunOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new NotebookRunOptions();
        var executed = notebook.Clone();
        Parameters.Inject(executed, options.Parameters);
        var workingDirectory = options.WorkingDirectory
            ?? (notebook.Path is null ? Environment.CurrentDirectory : Path.GetDirectoryName(Path.GetFullPath(notebook.Path))!);
        var log = options.Log ?? (_ => { });
        var total = Stopwatch.StartNew();
        var failures = new List<CellFailure>();
        var recorders = new List<(NotebookCell Cell, OutputRecorder Recorder, int Count)>();

        using var executor = new CellExecutor(new ExecutorOptions { WorkingDirectory = workingDirectory, CellTimeout = options.CellTimeout });
        var codeCells = Enumerable.Range(0, executed.Cells.Count)
            .Where(i => executed.Cells[i].IsCode && (options.Include?.Invoke(executed, i) ?? true)).ToList();
        for (int k = 0; k < codeCells.Count; k++)
        {
            var index = codeCells[k];
            var cell = executed.Cells[index];
            var recorder = new OutputRecorder();
            log($"[{executed.Name}] cell {index + 1} ({k + 1}/{codeCells.Count} code cells) running, {Seconds(total.Elapsed)} so far");
            var started = DateTimeOffset.UtcNow;
            CellRunResult result;
            if (cell.KernelName is { } kernel && kernel is not ("csharp" or "c#"))
            {
                var message = $"cell {index + 1} is a '{kernel}' cell; the workbook runs C# cells only";
                recorder.Error("UnsupportedKernel", message, [message]);
                result = new CellRunResult(false, 0, TimeSpan.Zero);
            }
            else result = await executor.ExecuteAsync(cell.Source, recorder, cancellationToken);
            var ended = DateTimeOffset.UtcNow;
            cell.Metadata["execution"] = new JsonObject
            {
                ["iopub.execute_input"] = started.ToString("O", CultureInfo.InvariantCulture),
                ["shell.execute_reply"] = ended.ToString("O", CultureInfo.InvariantCulture),
            };
            recorders.Add((cell, recorder, result.ExecutionCount));
            if (result.Succeeded) log($"[{executed.Name}] cell {index + 1} done in {Seconds(result.Elapsed)}");
            else
            {
                var (ename, evalue) = recorder.FirstError ?? ("Error", "failed");
                var failure = new CellFailure(index, result.ExecutionCount, ename, evalue);
                failures.Add(failure);
                log($"[{executed.Name}] {failure}");
            }
        }
        // Outputs are taken only now: a later cell may update an earlier cell's display.
        foreach (var (cell, recorder, count) in recorders) cell.SetOutputs(recorder.ToJson(), count == 0 ? null : count);
        return new NotebookRunResult(executed, failures, executor.RecordedResults, total.Elapsed);
    }

    static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";
}
