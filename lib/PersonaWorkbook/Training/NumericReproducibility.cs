using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PersonaWorkbook.Training;

/// <summary>
/// Asks libtorch's oneMKL for results that do not depend on the thread count (<c>MKL_CBWR=AUTO,STRICT</c>, its
/// "conditional numerical reproducibility"). The workbook relies on that: notebooks hand fine-tunes to one-thread
/// worker processes and compute others in-process on every core, and both land in one cache. On an AMD EPYC the default
/// mode already gave the same weights at 1 and 2 threads; on an Intel Xeon it did not (a tiny organism's fine-tune
/// differed after 20 steps), and with this setting it does, at no measurable cost to a float32 matmul there
/// (275–289 against 243–285 GFLOP/s at 1024²). A value the user set is left alone. It must be in the environment before
/// MKL's first call, so the CLI applies it first thing, and loading this assembly applies it too (for hosts such as
/// test runners); child processes inherit it.
/// </summary>
public static class NumericReproducibility
{
    public const string Variable = "MKL_CBWR";
    public const string Setting = "AUTO,STRICT";

    // A library's module initializer on purpose (CA2255): hosts other than the CLI — test runners, a notebook that
    // references the assembly — get the setting through it, in time when they touch the workbook before torch.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void OnLoad() => Apply();

    /// <summary>Sets <see cref="Variable"/> to <see cref="Setting"/> for this process and its children, unless already set.</summary>
    public static void Apply()
    {
        if (Environment.GetEnvironmentVariable(Variable) is not null) return;
        // .NET keeps its own copy of the environment on Unix: MKL reads the C library's, and children the managed one.
        // The workbook ships libtorch for Linux only; elsewhere the children at least get it.
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) setenv(Variable, Setting, 0);
        Environment.SetEnvironmentVariable(Variable, Setting);
    }

    [DllImport("libc", CharSet = CharSet.Ansi)]
    static extern int setenv(string name, string value, int overwrite);
}
