using System.Globalization;
using PersonaWorkbook.Notebooks.Execution;
using PersonaWorkbook.Reporting;

namespace PersonaWorkbook.Notebooks;

/// <summary>A named number a notebook reports, with an optional confidence interval and note.</summary>
public sealed record RecordedResult(string Name, double Value, double? CiLow, double? CiHigh, string? Note, int ExecutionCount);

/// <summary>
/// Machine-readable notebook results: <c>Results.Record("em_rate", 0.21, 0.17, 0.25)</c> in a cell, and
/// <c>workbook run</c> writes every recorded result to &lt;out&gt;/&lt;notebook&gt;.metrics.json.
/// </summary>
public static class Results
{
    /// <summary>
    /// Records a result for the running notebook (recording a name again replaces it). Outside a notebook the
    /// result is reported as a progress line so it is not lost.
    /// </summary>
    public static void Record(string name, double value, double? ciLow = null, double? ciHigh = null, string? note = null)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("a recorded result needs a name", nameof(name));
        if (!double.IsFinite(value)) throw new ArgumentException($"result '{name}' is {value}, not a finite number", nameof(value));
        if (ciLow is { } lo && ciHigh is { } hi && !(lo <= hi))
            throw new ArgumentException($"result '{name}': interval low {lo} is above high {hi}");
        if ((ciLow is null) != (ciHigh is null))
            throw new ArgumentException($"result '{name}': give both ends of the confidence interval or neither");

        var scope = CellScope.Current;
        var result = new RecordedResult(name, value, ciLow, ciHigh, note, scope?.ExecutionCount ?? 0);
        if (scope is not null) scope.Executor.Record(result);
        else Progress.Report("result " + Describe(result));
    }

    internal static string Describe(RecordedResult r)
    {
        var text = $"{r.Name} = {r.Value.ToString("G6", CultureInfo.InvariantCulture)}";
        if (r.CiLow is { } lo && r.CiHigh is { } hi)
            text += $" [{lo.ToString("G6", CultureInfo.InvariantCulture)}, {hi.ToString("G6", CultureInfo.InvariantCulture)}]";
        return r.Note is null ? text : $"{text} ({r.Note})";
    }
}
