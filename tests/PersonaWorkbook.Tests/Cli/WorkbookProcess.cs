using System.Diagnostics;

namespace PersonaWorkbook.Tests.Cli;

/// <summary>The `workbook` command as a user runs it: a separate process (the CLI built beside the tests), its exit code and output.</summary>
internal static class WorkbookProcess
{
    public static (int Code, string Stdout, string Stderr) Run(params string[] args) => Run(new Dictionary<string, string?>(), args);

    /// <summary>With environment variables set (a null value removes the variable).</summary>
    public static (int Code, string Stdout, string Stderr) Run(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment)
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "workbook.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("workbook " + string.Join(" ", args));
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }
}
