using System.Diagnostics;
using System.Globalization;

namespace PersonaWorkbook.Notebooks.Running;

/// <summary>Headless chromium (Debian's package) for PNG snapshots of offline HTML pages.</summary>
public static class Chromium
{
    static readonly string[] Names = ["chromium", "chromium-browser", "google-chrome"];

    /// <summary>The chromium executable on PATH, or null.</summary>
    public static string? Find() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .SelectMany(dir => Names.Select(name => Path.Combine(dir, name)))
            .FirstOrDefault(File.Exists);

    /// <summary>
    /// Runs chromium with a throwaway profile and no background network, lets the page's scripts finish under a
    /// virtual time budget, and saves a screenshot.
    /// </summary>
    public static async Task ScreenshotAsync(string chromium, string htmlPath, string pngPath, int width, int height,
        CancellationToken cancellationToken = default)
    {
        var profile = Directory.CreateTempSubdirectory("workbook-chromium-");
        try
        {
            var png = Path.GetFullPath(pngPath);
            Directory.CreateDirectory(Path.GetDirectoryName(png)!);
            var temp = png + $".{Environment.ProcessId}.tmp.png";
            var (code, output) = await RunAsync(chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                $"--user-data-dir={profile.FullName}",
                $"--window-size={width.ToString(CultureInfo.InvariantCulture)},{height.ToString(CultureInfo.InvariantCulture)}",
                "--virtual-time-budget=10000",
                $"--screenshot={temp}",
                new Uri(Path.GetFullPath(htmlPath)).AbsoluteUri,
            ], cancellationToken);
            if (code != 0 || !File.Exists(temp))
                throw new InvalidOperationException($"chromium could not screenshot {htmlPath} (exit {code}): {output.Trim()}");
            File.Move(temp, png, overwrite: true);
        }
        finally
        {
            profile.Delete(recursive: true);
        }
    }

    /// <summary>The page's DOM after its scripts ran (chromium --dump-dom).</summary>
    public static async Task<string> DumpDomAsync(string chromium, string htmlPath, CancellationToken cancellationToken = default)
    {
        var profile = Directory.CreateTempSubdirectory("workbook-chromium-");
        try
        {
            var (code, output) = await RunAsync(chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                $"--user-data-dir={profile.FullName}", "--virtual-time-budget=10000", "--dump-dom",
                new Uri(Path.GetFullPath(htmlPath)).AbsoluteUri,
            ], cancellationToken, stdoutOnly: true);
            if (code != 0) throw new InvalidOperationException($"chromium --dump-dom {htmlPath} failed (exit {code})");
            return output;
        }
        finally
        {
            profile.Delete(recursive: true);
        }
    }

    static async Task<(int Code, string Output)> RunAsync(string exe, string[] args, CancellationToken cancellationToken, bool stdoutOnly = false)
    {
        var start = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {exe}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{exe} did not finish within 90 s");
        }
        return (process.ExitCode, stdoutOnly ? await stdout : await stdout + await stderr);
    }
}
