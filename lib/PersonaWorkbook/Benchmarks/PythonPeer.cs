using System.Diagnostics;

namespace PersonaWorkbook.Benchmarks;

/// <summary>Runs a PyTorch peer script (Debian's python3-torch) for a benchmark and returns the last line it printed.</summary>
public static class PythonPeer
{
    /// <summary>A peer script shipped inside this assembly (so a benchmark needs no source checkout), by file name.</summary>
    public static string EmbeddedScript(string resourceName)
    {
        using var stream = typeof(PythonPeer).Assembly.GetManifestResourceStream(resourceName)
                           ?? throw new InvalidOperationException($"{resourceName} is not embedded in the PersonaWorkbook assembly");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>The JSON object a peer printed; errors say so and quote what it printed.</summary>
    public static System.Text.Json.Nodes.JsonNode ParseJson(string line, string what)
    {
        try { return System.Text.Json.Nodes.JsonNode.Parse(line) ?? throw new InvalidDataException($"{what} printed null"); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{what} printed invalid JSON ({e.Message}): {line}", e); }
    }

    /// <param name="what">How the peer is named in errors, e.g. "the PyTorch peer".</param>
    public static string Run(string python, string scriptName, string scriptText, IEnumerable<string> arguments, int threads, string what)
    {
        var dir = Directory.CreateTempSubdirectory("workbook-peer-").FullName;
        try
        {
            var script = Path.Combine(dir, scriptName);
            File.WriteAllText(script, scriptText);
            var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add(script);
            foreach (var arg in arguments) start.ArgumentList.Add(arg);
            // OpenMP and OpenBLAS size their pools from these before torch.set_num_threads runs.
            start.Environment["OMP_NUM_THREADS"] = $"{threads}";
            start.Environment["OPENBLAS_NUM_THREADS"] = $"{threads}";
            // Debian's torch runs OpenBLAS's own pthread pool beside its OpenMP pool, and OpenMP workers that spin after
            // each parallel region take the cores from OpenBLAS: `workbook bench model` measured the peer's training at
            // 37 GFLOP/s by default against 105 with PASSIVE (ours: 109 by default, 97 with PASSIVE). Each side is
            // timed in its faster setting unless the caller chose one.
            if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is null) start.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
            Process process;
            try { process = Process.Start(start)!; }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new InvalidOperationException($"cannot start {what} with '{python}': {e.Message} (install python3-torch, or pass --python)", e);
            }
            using (process)
            {
                var stderr = process.StandardError.ReadToEndAsync();
                var stdout = process.StandardOutput.ReadToEnd();
                process.WaitForExit();
                if (process.ExitCode != 0)
                    throw new InvalidOperationException($"{what} ({python} {scriptName}) failed with exit code {process.ExitCode}:\n{stderr.Result}");
                return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault()
                       ?? throw new InvalidDataException($"{what} printed nothing");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
