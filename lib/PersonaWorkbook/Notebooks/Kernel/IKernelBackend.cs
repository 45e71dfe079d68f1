namespace PersonaWorkbook.Notebooks.Kernel;

/// <summary>
/// What the kernel needs from a code executor. The protocol layer depends only on this, so it is tested with a small
/// fake and runs cells through the notebook engine in production (<c>CellExecutorBackend</c>).
/// </summary>
public interface IKernelBackend
{
    /// <summary>Runs one cell, reporting its outputs to <paramref name="output"/> as they happen; cells share state.
    /// Returns false when the cell failed (after reporting the failure through <see cref="IKernelOutput.Error"/>).
    /// Cancelling <paramref name="cancellationToken"/> interrupts the cell.</summary>
    Task<bool> ExecuteAsync(string code, IKernelOutput output, CancellationToken cancellationToken);

    /// <summary>"complete", "incomplete" or "invalid", as Jupyter's is_complete_reply wants.</summary>
    string IsComplete(string code);
}

/// <summary>Where a running cell's outputs go; the kernel turns each call into an iopub message at once.</summary>
public interface IKernelOutput
{
    /// <param name="name">"stdout" or "stderr".</param>
    void Stream(string name, string text);

    /// <summary>A display_data output. Values are strings, or JsonNodes for JSON mime types. A <paramref name="displayId"/>
    /// already shown becomes update_display_data, replacing that earlier output.</summary>
    void Display(IReadOnlyDictionary<string, object> data, string? displayId = null);

    /// <summary>The cell's value (execute_result); the kernel supplies the execution count.</summary>
    void Result(IReadOnlyDictionary<string, object> data);

    void Error(string ename, string evalue, IReadOnlyList<string> traceback);
}
