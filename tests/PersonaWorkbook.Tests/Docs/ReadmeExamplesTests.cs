using System.Text.RegularExpressions;
using PersonaWorkbook.Notebooks.Execution;

namespace PersonaWorkbook.Tests.Docs;

/// <summary>The README's C# examples run, in order, as notebook cells: documentation that stops compiling fails here.</summary>
public class ReadmeExamplesTests
{
    sealed class Sink : ICellOutputSink
    {
        public readonly List<string> Errors = [];
        public void Stream(string name, string text) { }
        public void Display(MimeBundle data, string? displayId = null) { }
        public void Result(MimeBundle data, int executionCount) { }
        public void Error(string ename, string evalue, IReadOnlyList<string> traceback) => Errors.Add($"{ename}: {evalue}\n{string.Join("\n", traceback)}");
    }

    [Fact]
    public async Task EveryCSharpBlockRuns()
    {
        var readme = File.ReadAllText(Path.Combine(Repository.Root, "README.md"));
        var blocks = Regex.Matches(readme, "```csharp\n(.*?)```", RegexOptions.Singleline).Select(m => m.Groups[1].Value).ToArray();
        Assert.True(blocks.Length >= 6, $"expected the six library examples, found {blocks.Length} csharp blocks");
        using var executor = new CellExecutor();
        for (int i = 0; i < blocks.Length; i++)
        {
            var sink = new Sink();
            var result = await executor.ExecuteAsync(blocks[i], sink);
            Assert.True(result.Succeeded, $"README csharp block {i + 1} failed:\n{string.Join("\n", sink.Errors)}\n--- block ---\n{blocks[i]}");
        }
    }
}
