using System.Collections.Immutable;
using System.Reflection;
using Microsoft.CodeAnalysis;

namespace PersonaWorkbook.Notebooks.Execution;

/// <summary>
/// The assemblies the workbook host already carries. Cells compile against these exact files (as metadata
/// references) so a cell's TorchSharp/Plotly/Deedle types are the host's types, never a second loaded copy.
/// </summary>
internal static class HostAssemblies
{
    static readonly Assembly[] Roots =
    {
        typeof(object).Assembly,
        typeof(Enumerable).Assembly,
        typeof(System.Collections.ArrayList).Assembly,
        typeof(System.Dynamic.DynamicObject).Assembly,
        typeof(Microsoft.CSharp.RuntimeBinder.Binder).Assembly,
        typeof(TorchSharp.torch).Assembly,
        typeof(Plotly.NET.GenericChart).Assembly,
        typeof(Plotly.NET.CSharp.Chart).Assembly,
        typeof(Deedle.Frame).Assembly,
        typeof(Microsoft.FSharp.Core.FSharpOption<>).Assembly,
        typeof(Microsoft.DotNet.Interactive.Formatting.Formatter).Assembly,
        typeof(Microsoft.ML.Tokenizers.Tokenizer).Assembly,
        typeof(HostAssemblies).Assembly,
    };

    /// <summary>
    /// NuGet package ids whose main assembly name differs from the id. Plotly.NET.Interactive's only job is a
    /// chart formatter, which the executor has built in.
    /// </summary>
    static readonly Dictionary<string, string> PackageAliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["TorchSharp-cpu"] = "TorchSharp",
        ["TorchSharp-cuda-linux"] = "TorchSharp",
        ["libtorch-cpu-linux-x64"] = "TorchSharp",
        ["Plotly.NET.Interactive"] = "Plotly.NET",
    };

    static readonly Lazy<ImmutableArray<Assembly>> All = new(Closure);
    static readonly Lazy<ImmutableArray<MetadataReference>> References = new(() =>
        All.Value.Select(a => (MetadataReference)MetadataReference.CreateFromFile(a.Location)).ToImmutableArray());

    public static ImmutableArray<MetadataReference> MetadataReferences => References.Value;

    /// <summary>The host assembly satisfying a NuGet package id, or null when the host does not carry it.</summary>
    public static Assembly? ForPackage(string packageId)
    {
        var name = PackageAliases.GetValueOrDefault(packageId, packageId);
        return All.Value.FirstOrDefault(a => string.Equals(a.GetName().Name, name, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The package ids a notebook can name in <c>#r "nuget: ..."</c>, for error messages.</summary>
    public static IEnumerable<string> CarriedPackages =>
        All.Value.Where(a => !IsFramework(a)).Select(a => a.GetName().Name!).Order(StringComparer.OrdinalIgnoreCase);

    public static string VersionOf(Assembly assembly)
    {
        var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        return informational?.Split('+')[0] ?? assembly.GetName().Version?.ToString() ?? "?";
    }

    static readonly string FrameworkDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location)!;

    static bool IsFramework(Assembly a) =>
        string.Equals(Path.GetDirectoryName(a.Location), FrameworkDirectory, StringComparison.Ordinal);

    // The roots plus everything non-framework assemblies reference, so base types from transitive packages
    // (DynamicObj under Plotly.NET, for one) resolve at compile time.
    static ImmutableArray<Assembly> Closure()
    {
        var seen = new Dictionary<string, Assembly>(StringComparer.OrdinalIgnoreCase);
        var pending = new Stack<Assembly>(Roots);
        while (pending.Count > 0)
        {
            var assembly = pending.Pop();
            if (assembly.IsDynamic || string.IsNullOrEmpty(assembly.Location) || !seen.TryAdd(assembly.GetName().Name!, assembly))
                continue;
            if (IsFramework(assembly)) continue;
            foreach (var name in assembly.GetReferencedAssemblies())
            {
                if (seen.ContainsKey(name.Name!)) continue;
                Assembly loaded;
                try { loaded = Assembly.Load(name); }
                catch (IOException) { continue; }  // an optional dependency the host never ships (e.g. Windows-only)
                catch (BadImageFormatException) { continue; }
                pending.Push(loaded);
            }
        }
        return seen.Values.ToImmutableArray();
    }
}
