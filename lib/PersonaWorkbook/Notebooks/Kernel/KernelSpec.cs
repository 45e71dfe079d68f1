using System.Text.Json;
using System.Text.Json.Nodes;

namespace PersonaWorkbook.Notebooks.Kernel;

/// <summary>
/// The Jupyter kernelspec that lets front ends (VS Code, JupyterLab, nbconvert) start the workbook kernel: a folder
/// <c>workbook-csharp</c> holding kernel.json, placed where jupyter_client looks for kernels.
/// </summary>
public static class KernelSpec
{
    public const string Name = "workbook-csharp";
    public const string DisplayName = "C# (Persona Workbook)";

    /// <summary>The per-user kernels folder, as jupyter_core's jupyter_data_dir() finds it: $JUPYTER_DATA_DIR, else
    /// ~/Library/Jupyter on macOS, %APPDATA%\jupyter on Windows, $XDG_DATA_HOME/jupyter or ~/.local/share/jupyter elsewhere.</summary>
    public static string UserKernelsDirectory()
    {
        var dataDir = Environment.GetEnvironmentVariable("JUPYTER_DATA_DIR");
        if (string.IsNullOrEmpty(dataDir))
        {
            var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            if (OperatingSystem.IsMacOS()) dataDir = Path.Combine(home, "Library", "Jupyter");
            else if (OperatingSystem.IsWindows())
                dataDir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData), "jupyter");
            else
            {
                var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
                dataDir = Path.Combine(string.IsNullOrEmpty(xdg) ? Path.Combine(home, ".local", "share") : xdg, "jupyter");
            }
        }
        return Path.Combine(dataDir, "kernels");
    }

    /// <summary>The system-wide kernels folder `jupyter kernelspec install` uses without --user: %PROGRAMDATA%\jupyter on
    /// Windows, /usr/local/share/jupyter elsewhere.</summary>
    public static string SystemKernelsDirectory() => OperatingSystem.IsWindows()
        ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.CommonApplicationData), "jupyter", "kernels")
        : "/usr/local/share/jupyter/kernels";

    /// <summary>The kernels folder under an install prefix (PREFIX/share/jupyter/kernels), as with `--prefix`.</summary>
    public static string PrefixKernelsDirectory(string prefix) => Path.Combine(prefix, "share", "jupyter", "kernels");

    /// <summary>kernel.json: <paramref name="launcher"/> (the workbook executable, or dotnet and workbook.dll) followed by
    /// the kernel verb and the connection file placeholder that jupyter_client fills in.</summary>
    public static JsonObject Describe(IReadOnlyList<string> launcher)
    {
        if (launcher.Count == 0) throw new ArgumentException("the kernel launcher command is empty", nameof(launcher));
        var argv = new JsonArray();
        foreach (var part in launcher.Concat(["kernel", "--connection-file", "{connection_file}"])) argv.Add(part);
        return new JsonObject
        {
            ["argv"] = argv,
            ["display_name"] = DisplayName,
            ["language"] = "C#",
            // Interrupts arrive as interrupt_request on the control channel: a SIGINT would reach the whole dotnet process.
            ["interrupt_mode"] = "message",
            ["metadata"] = new JsonObject
            {
                ["debugger"] = false,
                ["implementation"] = "workbook",
                ["kernel_protocol_version"] = JupyterMessage.ProtocolVersion,
            },
        };
    }

    /// <summary>Writes <c>kernelsDirectory/workbook-csharp/kernel.json</c> (replacing an older one atomically) and
    /// returns the kernelspec folder.</summary>
    public static string Install(string kernelsDirectory, IReadOnlyList<string> launcher)
    {
        var specDir = Path.Combine(kernelsDirectory, Name);
        try
        {
            Directory.CreateDirectory(specDir);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"cannot create {specDir}: {e.Message} (use --user to install for this user only)", e);
        }
        var target = Path.Combine(specDir, "kernel.json");
        AtomicFile.WriteAllText(target, Describe(launcher).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return specDir;
    }
}
