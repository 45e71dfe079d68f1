using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

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
            if (OpenBlasCore(python) is { } core) start.Environment["OPENBLAS_CORETYPE"] = core;
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

    static readonly ConcurrentDictionary<string, string?> Cores = new();

    /// <summary>
    /// The OPENBLAS_CORETYPE a peer runs with, or null to leave OpenBLAS's own choice. Debian 12's OpenBLAS 0.3.21 picks
    /// its kernels by CPU model and falls back to its oldest x86-64 ones ("Prescott") on a model it does not know: on an
    /// Intel Xeon of family 6, model 207 (2026-12-06) that ran a float32 1024² product at 60 GFLOP/s, where its AVX-512
    /// kernels ("Cooperlake") ran 300 and libtorch's oneMKL 317. A peer slowed so is not a fair peer, so on that fallback
    /// the peer gets the kernels the CPU's flags support; OpenBLAS's own choice otherwise, and the user's if set.
    /// </summary>
    public static string? OpenBlasCore(string python)
    {
        if (Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE") is not null) return null;
        return Cores.GetOrAdd(python, p => DetectedCore(p) is "Prescott" ? CoreForFlags(CpuFlags()) : null);
    }

    /// <summary>The OpenBLAS kernels for a CPU with these /proc/cpuinfo flags, or null where OpenBLAS's generic ones are all it has.</summary>
    public static string? CoreForFlags(IReadOnlySet<string> flags) =>
        flags.Contains("avx512_bf16") ? "Cooperlake"
        : flags.Contains("avx512f") && flags.Contains("avx512vl") && flags.Contains("avx512bw") ? "SkylakeX"
        : flags.Contains("avx2") && flags.Contains("fma") ? "Haswell"
        : null;

    /// <summary>The core OpenBLAS reports choosing when it loads (OPENBLAS_VERBOSE=2 prints "Core: NAME"), or null.</summary>
    public static string? ParseVerboseCore(string output) => Regex.Match(output, @"Core: (\w+)") is { Success: true } m ? m.Groups[1].Value : null;

    static string? DetectedCore(string python)
    {
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "-c", "import torch" }) start.ArgumentList.Add(arg);
        start.Environment["OPENBLAS_VERBOSE"] = "2";
        start.Environment["OPENBLAS_NUM_THREADS"] = "1";
        try
        {
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return ParseVerboseCore(stdout + "\n" + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception) { return null; }   // Run reports a missing interpreter itself
    }

    static IReadOnlySet<string> CpuFlags()
    {
        const string cpuinfo = "/proc/cpuinfo";
        if (!File.Exists(cpuinfo)) return new HashSet<string>();
        var line = File.ReadLines(cpuinfo).FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
        return line is null ? new HashSet<string>() : line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
    }
}
