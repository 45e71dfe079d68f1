using System.Text;
using System.Text.RegularExpressions;

namespace PersonaWorkbook.Notebooks.Execution;

/// <summary>
/// The .NET Interactive directives a cell may carry, handled before Roslyn sees the code. Handled lines are
/// blanked, not removed, so compiler line numbers still match the cell. <c>#r "path"</c> and <c>#load</c> stay
/// for Roslyn, which resolves them against the working directory.
/// </summary>
internal sealed partial class Directives
{
    public string Code { get; private init; } = "";
    /// <summary>The cell held only markdown (<c>#!markdown</c>): nothing to run.</summary>
    public bool Skip { get; private init; }
    /// <summary><c>#!time</c>: report the cell's wall time.</summary>
    public bool Time { get; private init; }
    /// <summary>Why the cell cannot run, naming the line; null when it can.</summary>
    public string? Error { get; private init; }
    /// <summary>Messages for stderr, e.g. a package version the host replaces.</summary>
    public IReadOnlyList<string> Notes { get; private init; } = [];

    static readonly HashSet<string> CSharpKernelNames = new(StringComparer.Ordinal) { "csharp", "c#" };

    [GeneratedRegex("""^\s*#r\s+"nuget:\s*(?<id>[^,"\s]+)\s*(,\s*(?<version>[^"]*?))?\s*"\s*$""")]
    private static partial Regex NugetReference();

    [GeneratedRegex(@"^\s*#!(?<name>\S*)")]
    private static partial Regex Magic();

    public static Directives Parse(string source)
    {
        var lines = source.Split('\n');
        var code = new StringBuilder();
        var notes = new List<string>();
        bool inMarkdown = false, sawMarkdown = false, time = false;
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            var lineNumber = i + 1;
            var keep = !inMarkdown;
            var magic = Magic().Match(line);
            if (magic.Success)
            {
                var name = magic.Groups["name"].Value;
                keep = false;
                if (CSharpKernelNames.Contains(name)) inMarkdown = false;
                else if (name == "markdown") inMarkdown = sawMarkdown = true;
                else if (name == "time") time = true;
                else return Fail($"line {lineNumber}: unsupported magic command '#!{name}' (the workbook runs C# only; it knows #!csharp, #!c#, #!markdown and #!time)");
            }
            else if (keep && NugetReference().Match(line) is { Success: true } nuget)
            {
                var id = nuget.Groups["id"].Value;
                var requested = nuget.Groups["version"].Value;
                var assembly = HostAssemblies.ForPackage(id);
                if (assembly is null)
                    return Fail($"line {lineNumber}: package '{id}' is not carried by the workbook host, and notebooks cannot restore packages. " +
                                $"Available: {string.Join(", ", HostAssemblies.CarriedPackages)}.");
                var carried = HostAssemblies.VersionOf(assembly);
                if (requested.Length > 0 && !requested.Contains('*') && requested != carried)
                    notes.Add($"#r \"nuget: {id}, {requested}\": using the workbook's {assembly.GetName().Name} {carried}.");
                keep = false;
            }
            if (i > 0) code.Append('\n');
            if (keep) code.Append(lines[i]);
        }
        var text = code.ToString();
        return new Directives
        {
            Code = text,
            Skip = sawMarkdown && string.IsNullOrWhiteSpace(text),
            Time = time,
            Notes = notes,
        };
    }

    static Directives Fail(string error) => new() { Error = error };

    /// <summary>The code with magic lines blanked, for syntax-only checks (is the submission complete?).</summary>
    public static string WithoutMagics(string source) =>
        string.Join('\n', source.Split('\n').Select(l => Magic().IsMatch(l) ? "" : l));
}
