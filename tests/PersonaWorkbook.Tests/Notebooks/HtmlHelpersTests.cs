using System.Text.Json.Nodes;
using PersonaWorkbook.Notebooks.Execution;

namespace PersonaWorkbook.Tests.Notebooks;

public class HtmlHelpersTests
{
    sealed class Sink : ICellOutputSink
    {
        public readonly List<MimeBundle> Shown = [];
        public readonly List<string> Errors = [];
        public void Stream(string name, string text) { }
        public void Display(MimeBundle data, string? displayId = null) => Shown.Add(data);
        public void Result(MimeBundle data, int executionCount) => Shown.Add(data);
        public void Error(string ename, string evalue, IReadOnlyList<string> traceback) => Errors.Add(evalue);
    }

    [Fact]
    public async Task HtmlAndDisplayAsShowContentVerbatim()
    {
        using var executor = new CellExecutor();
        var sink = new Sink();
        var ok = await executor.ExecuteAsync("""
            display(HTML("<b>bold</b> & <i>x</i>"));
            "{\"a\": [1, 2]}".DisplayAs("application/json");
            "<p>raw</p>".DisplayAs("text/html");
            HTML("<span>last</span>")
            """, sink);
        Assert.True(ok.Succeeded, string.Join("\n", sink.Errors));
        Assert.Equal("<b>bold</b> & <i>x</i>", sink.Shown[0]["text/html"]);
        Assert.Equal(2, ((JsonNode)sink.Shown[1]["application/json"])["a"]!.AsArray().Count);
        Assert.Equal("<p>raw</p>", sink.Shown[2]["text/html"]);
        Assert.Equal("<span>last</span>", sink.Shown[3]["text/html"]);
        var bad = await executor.ExecuteAsync("\"{oops\".DisplayAs(\"application/json\");", sink);
        Assert.False(bad.Succeeded);
        Assert.Contains("not valid JSON", sink.Errors.Last());
    }
}
