using System.Text.Json.Nodes;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using PersonaWorkbook.Notebooks.Execution;

namespace PersonaWorkbook.Tests.Notebooks;

/// <summary>Everything one cell sent to its sink.</summary>
internal sealed class CapturingSink : ICellOutputSink
{
    public List<(string Name, string Text)> Streams { get; } = [];
    public List<(MimeBundle Data, string? Id)> Displays { get; } = [];
    public List<(MimeBundle Data, int Count)> Results { get; } = [];
    public List<(string Ename, string Evalue, IReadOnlyList<string> Traceback)> Errors { get; } = [];

    public string Stdout => string.Concat(Streams.Where(s => s.Name == "stdout").Select(s => s.Text));
    public string Stderr => string.Concat(Streams.Where(s => s.Name == "stderr").Select(s => s.Text));

    public void Stream(string name, string text) { lock (Streams) Streams.Add((name, text)); }
    public void Display(MimeBundle data, string? displayId = null) => Displays.Add((data, displayId));
    public void Result(MimeBundle data, int executionCount) => Results.Add((data, executionCount));
    public void Error(string ename, string evalue, IReadOnlyList<string> traceback) => Errors.Add((ename, evalue, traceback));
}

/// <summary>One C# session for the whole class: Roslyn's first compile is the slow part.</summary>
public sealed class SharedExecutor : IDisposable
{
    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("workbook-exec-").FullName;
    public CellExecutor Executor { get; }

    public SharedExecutor() => Executor = new CellExecutor(new ExecutorOptions { WorkingDirectory = Directory });

    public void Dispose() => Executor.Dispose();
}

public class CellExecutorTests(SharedExecutor shared) : IClassFixture<SharedExecutor>
{
    readonly CellExecutor _executor = shared.Executor;

    async Task<(CellRunResult Result, CapturingSink Sink)> Run(string code, CellExecutor? executor = null)
    {
        var sink = new CapturingSink();
        var result = await (executor ?? _executor).ExecuteAsync(code, sink);
        return (result, sink);
    }

    static string Plain(MimeBundle bundle) => (string)bundle["text/plain"];

    [Fact]
    public void CompileOnlyChecksCellsInSessionOrderWithoutRunningThem()
    {
        using var executor = new CellExecutor();
        Assert.Empty(executor.CompileOnly(["var n = 2;", "display(n * 3);", "#!time\nn + 1", "throw new System.Exception(\"never runs\");"]));
        var errors = executor.CompileOnly(["var n = 2;", "n + missing", "#!nonsense\n1"]);
        Assert.Equal(2, errors.Count);
        Assert.StartsWith("cell 2, line 1: CS0103", errors[0]);
        Assert.StartsWith("cell 3", errors[1]);
        Assert.Equal(0, executor.ExecutionCount);
    }

    [Fact]
    public async Task StateCarriesAcrossCellsAndTrailingExpressionIsTheResult()
    {
        var (first, _) = await Run("var carried = 40;\nint Twice(int v) => 2 * v;");
        Assert.True(first.Succeeded);
        var (second, sink) = await Run("Twice(carried) + 2");
        Assert.True(second.Succeeded);
        Assert.Equal(first.ExecutionCount + 1, second.ExecutionCount);
        var (data, count) = Assert.Single(sink.Results);
        Assert.Equal("82", Plain(data));
        Assert.Equal(second.ExecutionCount, count);

        var (_, statement) = await Run("carried++;");
        Assert.Empty(statement.Results);  // a statement has no value
        var (_, voidCall) = await Run("Console.Write(\"\")");
        Assert.Empty(voidCall.Results);   // nor does a void call without a semicolon
    }

    [Fact]
    public async Task KernelImportsAndHostAssembliesAreTheHostsOwn()
    {
        var (result, sink) = await Run(
            "new StringBuilder().Append(new List<int> { 1, 2 }.Sum()).ToString() + \":\" +\n" +
            "object.ReferenceEquals(typeof(TorchSharp.torch).Assembly, AppDomain.CurrentDomain.GetAssemblies().Single(a => a.GetName().Name == \"TorchSharp\"))");
        Assert.True(result.Succeeded, string.Join("\n", sink.Errors.Select(e => e.Evalue)));
        Assert.Equal("3:True", Plain(sink.Results[0].Data));
    }

    [Fact]
    public async Task NugetReferenceIsSatisfiedByTheHost()
    {
        var (result, sink) = await Run("#i \"nuget: https://example.org/feed\"\n#r \"nuget: TorchSharp, 0.105.0\"\n#r \"nuget: Deedle\"\nTorchSharp.torch.ones(2).sum().item<float>()");
        Assert.True(result.Succeeded, string.Join("\n", sink.Errors.Select(e => e.Evalue)));
        Assert.Equal("2", Plain(sink.Results[0].Data));
        Assert.Contains("using the workbook's TorchSharp 0.107.0", sink.Stderr);
        Assert.Contains("line 1: package sources (#i) are ignored", sink.Stderr);
    }

    [Fact]
    public async Task NugetReferenceTheHostLacksFailsNamingThePackage()
    {
        var (result, sink) = await Run("#r \"nuget: Newtonsoft.Jsonish, 13.0.1\"\n1");
        Assert.False(result.Succeeded);
        var error = Assert.Single(sink.Errors);
        Assert.Contains("package 'Newtonsoft.Jsonish' is not carried by the workbook host", error.Evalue);
        Assert.Contains($"cell {result.ExecutionCount}, line 1", error.Evalue);
        Assert.Empty(sink.Results);
    }

    [Fact]
    public async Task DllReferenceResolvesAgainstTheWorkingDirectory()
    {
        var compilation = CSharpCompilation.Create("Greeter",
            [CSharpSyntaxTree.ParseText("namespace Greeting { public static class Greeter { public static string Hello(string n) => \"hello \" + n; } }")],
            [MetadataReference.CreateFromFile(typeof(object).Assembly.Location)],
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        var emitted = compilation.Emit(Path.Combine(shared.Directory, "Greeter.dll"));
        Assert.True(emitted.Success);

        var (result, sink) = await Run("#r \"Greeter.dll\"\nGreeting.Greeter.Hello(\"dll\")");
        Assert.True(result.Succeeded, string.Join("\n", sink.Errors.Select(e => e.Evalue)));
        Assert.Equal("hello dll", Plain(sink.Results[0].Data));
    }

    [Fact]
    public async Task LoadRunsAScriptFileFromTheWorkingDirectory()
    {
        File.WriteAllText(Path.Combine(shared.Directory, "helpers.csx"), "int Loaded(int v) => v * 100;\n");
        var (result, sink) = await Run("#load \"helpers.csx\"\nLoaded(3)");
        Assert.True(result.Succeeded, string.Join("\n", sink.Errors.Select(e => e.Evalue)));
        Assert.Equal("300", Plain(sink.Results[0].Data));
    }

    [Fact]
    public async Task MarkdownCellIsSkippedAndCSharpMagicIsANoOp()
    {
        var (markdown, skipped) = await Run("#!markdown\n# Not C# { at all");
        Assert.True(markdown.Succeeded);
        Assert.Empty(skipped.Streams);
        Assert.Empty(skipped.Results);
        Assert.Empty(skipped.Errors);

        var (csharp, sink) = await Run("#!csharp\n#!c#\n\"still C#\"");
        Assert.True(csharp.Succeeded);
        Assert.Equal("still C#", Plain(sink.Results[0].Data));
    }

    [Fact]
    public async Task TimeMagicReportsWallTime()
    {
        var (result, sink) = await Run("#!time\nSystem.Threading.Thread.Sleep(20);");
        Assert.True(result.Succeeded);
        Assert.Matches(@"^Wall time: \d+\.\d ms\n$", sink.Stdout);
    }

    [Fact]
    public async Task UnknownMagicFailsClearly()
    {
        var (result, sink) = await Run("var before = 1;\n#!fsharp\nlet x = 1");
        Assert.False(result.Succeeded);
        Assert.Contains("line 2: unsupported magic command '#!fsharp'", Assert.Single(sink.Errors).Evalue);
    }

    [Fact]
    public async Task PlotlyChartGivesFigureJsonAndOfflineHtmlWithTheLibraryOnce()
    {
        using var executor = new CellExecutor();  // fresh session: the first chart carries plotly.js
        const string chart = "Plotly.NET.CSharp.Chart.Line<int, int, string>(x: new[] { 1, 2 }, y: new[] { 3, 4 }, Name: \"loss\")";
        var (first, sink) = await Run(chart, executor);
        Assert.True(first.Succeeded, string.Join("\n", sink.Errors.Select(e => e.Evalue)));
        var bundle = sink.Results[0].Data;
        var figure = Assert.IsType<JsonObject>(bundle[PlotlyHtml.MimeType]);
        Assert.Equal("scatter", (string?)figure["data"]![0]!["type"]);
        Assert.Equal("[3,4]", figure["data"]![0]!["y"]!.ToJsonString());
        var html = (string)bundle["text/html"];
        Assert.Contains("plotly.js v" + PlotlyHtml.Version, html);
        Assert.Contains("Plotly.newPlot(", html);
        Assert.DoesNotMatch("<script[^>]*src=", html);  // nothing fetched: the library is inline

        var (_, again) = await Run("display(" + chart + ");", executor);
        var secondHtml = (string)again.Displays[0].Data["text/html"];
        Assert.DoesNotContain("plotly.js v", secondHtml);
        Assert.Contains("Plotly.newPlot(", secondHtml);
    }

    [Fact]
    public async Task DeedleFrameAndSeriesBecomeTablesWithARowLimit()
    {
        var (result, sink) = await Run(
            "var frame = Deedle.Frame.FromRecords(Enumerable.Range(0, 100).Select(i => new { Step = i, Loss = 1.0 / (i + 1) }));\n" +
            "display(frame);\nframe.GetColumn<double>(\"Loss\")");
        Assert.True(result.Succeeded, string.Join("\n", sink.Errors.Select(e => e.Evalue)));
        var frameHtml = (string)sink.Displays[0].Data["text/html"];
        Assert.StartsWith("<table class=\"workbook-table\">", frameHtml);
        Assert.Contains("<th>Step</th><th>Loss</th>", frameHtml);
        Assert.Contains("100 rows, 2 columns", frameHtml);
        Assert.DoesNotContain("-&gt;", frameHtml);
        var rows = frameHtml.Split("<tr>").Length - 1;
        Assert.InRange(rows, 10, MimeFormatter.TableRowLimit + 3);
        Assert.Contains("Loss", Plain(sink.Displays[0].Data));

        var seriesHtml = (string)sink.Results[0].Data["text/html"];
        Assert.Contains("100 values", seriesHtml);
        Assert.InRange(seriesHtml.Split("<tr>").Length - 1, 10, MimeFormatter.TableRowLimit + 3);

        var (untyped, untypedSink) = await Run("var rows = new List<object> { new { A = 1 }, new { A = 2 } };\nDeedle.Frame.FromRecords(rows)");
        Assert.True(untyped.Succeeded);
        Assert.Contains("2 rows, 0 columns — Frame.FromRecords reads the properties of the rows' static type", System.Net.WebUtility.HtmlDecode((string)untypedSink.Results[0].Data["text/html"]));
    }

    [Fact]
    public async Task TensorShowsShapeDtypeAndValues()
    {
        var (result, sink) = await Run("TorchSharp.torch.arange(6).reshape(2, 3)");
        Assert.True(result.Succeeded, string.Join("\n", sink.Errors.Select(e => e.Evalue)));
        var plain = Plain(sink.Results[0].Data);
        Assert.StartsWith("tensor [2, 3] Int64 on cpu\n", plain);
        Assert.Contains("[3, 4, 5]", plain);
        Assert.Contains("<b>tensor [2, 3] Int64 on cpu</b>", (string)sink.Results[0].Data["text/html"]);
    }

    [Fact]
    public async Task StringsArePlainTextAndObjectsGoThroughTheFormatter()
    {
        var (_, text) = await Run("\"<b>raw</b>\"");
        Assert.Equal(["text/plain"], text.Results[0].Data.Keys);
        Assert.Equal("<b>raw</b>", Plain(text.Results[0].Data));

        var (_, obj) = await Run("new { Name = \"probe\", Score = 0.5 }");
        var bundle = obj.Results[0].Data;
        Assert.Contains("dni-treeview", (string)bundle["text/html"]);
        Assert.Contains("Score: 0.5", Plain(bundle));

        var (_, only) = await Run("\"x\".Display(\"text/html\");");
        Assert.Equal(["text/html"], only.Displays[0].Data.Keys);
    }

    [Fact]
    public async Task DisplayedValueUpdatesInPlace()
    {
        var (result, sink) = await Run("var shown = display(1);\nshown.Update(2);");
        Assert.True(result.Succeeded);
        Assert.Equal(2, sink.Displays.Count);
        Assert.Equal(sink.Displays[0].Id, sink.Displays[1].Id);
        Assert.Equal("2", Plain(sink.Displays[1].Data));
    }

    [Fact]
    public async Task ConsoleOutputIsCapturedPerCell()
    {
        var (result, sink) = await Run("Console.WriteLine(\"to out\");\nConsole.Error.WriteLine(\"to err\");\nawait Task.Run(() => Console.Write(\"from a task\"));");
        Assert.True(result.Succeeded);
        Assert.Equal("to out\nfrom a task", sink.Stdout);
        Assert.Equal("to err\n", sink.Stderr);
    }

    [Fact]
    public async Task ExceptionReportsCellAndLineAndTheSessionGoesOn()
    {
        var (result, sink) = await Run("var kept = 5;\nConsole.WriteLine(\"before\");\nthrow new InvalidOperationException(\"boom\");");
        Assert.False(result.Succeeded);
        var error = Assert.Single(sink.Errors);
        Assert.Equal("System.InvalidOperationException", error.Ename);
        Assert.Equal($"cell {result.ExecutionCount}, line 3: boom", error.Evalue);
        Assert.Equal("before\n", sink.Stdout);

        var (next, after) = await Run("kept + 1");
        Assert.True(next.Succeeded);
        Assert.Equal("6", Plain(after.Results[0].Data));
    }

    [Fact]
    public async Task CompileErrorReportsCellAndLine()
    {
        var (result, sink) = await Run("var fine = 1;\nint broken = \"text\";");
        Assert.False(result.Succeeded);
        var error = Assert.Single(sink.Errors);
        Assert.Equal("CompilationError", error.Ename);
        Assert.StartsWith($"cell {result.ExecutionCount}, line 2: CS0029:", error.Evalue);
    }

    [Fact]
    public async Task CellOverTheTimeLimitFailsAndCancellationStopsACell()
    {
        // Generous enough that compiling "1 + 1" fits on a loaded CI machine.
        using var executor = new CellExecutor(new ExecutorOptions { CellTimeout = TimeSpan.FromSeconds(3) });
        var (slow, sink) = await Run("var survivor = 7;\nwhile (!CellCancellationToken.IsCancellationRequested) System.Threading.Thread.Sleep(10);", executor);
        Assert.False(slow.Succeeded);
        Assert.Equal($"cell {slow.ExecutionCount} exceeded the time limit of 3 s", Assert.Single(sink.Errors).Evalue);

        var (fast, ok) = await Run("1 + 1", executor);
        Assert.True(fast.Succeeded);

        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var cancelled = new CapturingSink();
        var result = await _executor.ExecuteAsync("while (!CellCancellationToken.IsCancellationRequested) System.Threading.Thread.Sleep(10);", cancelled, cancel.Token);
        Assert.False(result.Succeeded);
        Assert.Contains("was cancelled", Assert.Single(cancelled.Errors).Evalue);
    }

    [Fact]
    public async Task RecordedResultsBelongToTheExecutor()
    {
        var (result, _) = await Run("PersonaWorkbook.Notebooks.Results.Record(\"executor_metric\", 0.25, 0.2, 0.3, \"note\");");
        Assert.True(result.Succeeded);
        var recorded = Assert.Single(_executor.RecordedResults, r => r.Name == "executor_metric");
        Assert.Equal((0.25, 0.2, 0.3, "note", result.ExecutionCount), (recorded.Value, recorded.CiLow!.Value, recorded.CiHigh!.Value, recorded.Note!, recorded.ExecutionCount));

        var (bad, sink) = await Run("PersonaWorkbook.Notebooks.Results.Record(\"nan_metric\", double.NaN);");
        Assert.False(bad.Succeeded);
        Assert.Contains("'nan_metric' is NaN", sink.Errors[0].Evalue);
    }

    [Theory]
    [InlineData("var x = 1;", "complete")]
    [InlineData("if (true) {", "incomplete")]
    [InlineData("#!time\nvoid F() {", "incomplete")]
    [InlineData("int x = ;", "invalid")]
    public void IsCompleteFollowsJupyterSemantics(string code, string expected) =>
        Assert.Equal(expected, CellExecutor.IsComplete(code));
}
