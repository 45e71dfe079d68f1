using System.Diagnostics;

namespace PersonaWorkbook.Tests.Checkpoints;

/// <summary>A fresh directory under the system temp folder, deleted on dispose.</summary>
sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("pwb-test-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { /* best effort: a leftover temp folder is harmless */ }
    }
}

/// <summary>Debian's /usr/bin/python3 with numpy, the independent reader and writer the interop tests compare against.</summary>
static class SystemPython
{
    const string Interpreter = "/usr/bin/python3";

    /// <summary>Runs <paramref name="script"/> with the arguments and returns its standard output; fails the test on a non-zero exit.</summary>
    public static string Run(string script, params string[] args)
    {
        Assert.True(File.Exists(Interpreter), $"{Interpreter} is missing: install python3-numpy (apt)");
        var probe = Start("import numpy", Array.Empty<string>());
        Assert.True(probe.ExitCode == 0, $"{Interpreter} cannot import numpy: install python3-numpy (apt)\n{probe.Error}");
        var result = Start(script, args);
        Assert.True(result.ExitCode == 0, $"python exited with {result.ExitCode}\nstdout:\n{result.Output}\nstderr:\n{result.Error}");
        return result.Output;
    }

    static (int ExitCode, string Output, string Error) Start(string script, string[] args)
    {
        var info = new ProcessStartInfo(Interpreter) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(script);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output, error.Result);
    }
}
