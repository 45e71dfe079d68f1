using PersonaWorkbook.Notebooks.Execution;
using PersonaWorkbook.Reporting;

namespace PersonaWorkbook.Notebooks.Kernel;

/// <summary>Runs kernel cells through the notebook engine, so a cell behaves the same in Jupyter as in `workbook run`.</summary>
public sealed class CellExecutorBackend(CellExecutor executor) : IKernelBackend
{
    public async Task<bool> ExecuteAsync(string code, IKernelOutput output, CancellationToken cancellationToken)
    {
        // Progress lines from library code (training steps, generation) would otherwise reach only the kernel's stderr,
        // which front ends hide; shown as the cell's stderr they tell the user a long cell is alive.
        Action<string> progress = line => output.Stream("stderr", line + "\n");
        Progress.Reported += progress;
        try
        {
            return (await executor.ExecuteAsync(code, new Sink(output), cancellationToken)).Succeeded;
        }
        finally
        {
            Progress.Reported -= progress;
        }
    }

    public string IsComplete(string code) => CellExecutor.IsComplete(code);

    sealed class Sink(IKernelOutput output) : ICellOutputSink
    {
        public void Stream(string name, string text) => output.Stream(name, text);

        public void Display(MimeBundle data, string? displayId = null) => output.Display(data, displayId);

        // The engine counts every run; Jupyter's execution_count skips silent runs, so the kernel numbers results itself.
        public void Result(MimeBundle data, int executionCount) => output.Result(data);

        public void Error(string ename, string evalue, IReadOnlyList<string> traceback) => output.Error(ename, evalue, traceback);
    }
}
