using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using PersonaWorkbook.Notebooks.Execution;
using PersonaWorkbook.Notebooks.Format;
using PersonaWorkbook.Notebooks.Running;
using static PersonaWorkbook.Tests.Notebooks.NotebookFormatTests;

namespace PersonaWorkbook.Tests.Notebooks;

/// <summary>plots.ipynb run once with --param seed=7 --param profile=full, its outputs written like `workbook run` does.</summary>
public sealed class PlotsRun : IAsyncLifetime
{
    public string OutDirectory { get; } = Directory.CreateTempSubdirectory("workbook-run-").FullName;
    public NotebookRunResult Run { get; private set; } = null!;
    public NotebookOutputFiles Files { get; private set; } = null!;
    public List<string> Log { get; } = [];

    public async Task InitializeAsync()
    {
        List<KeyValuePair<string, string>> parameters = [new("seed", "7"), new("profile", "full")];
        Run = await NotebookRunner.RunAsync(Notebook.Load(Sample("plots.ipynb")),
            new NotebookRunOptions { Parameters = parameters, Log = line => { lock (Log) Log.Add(line); } });
        Files = NotebookOutputs.Write(Sample("plots.ipynb"), Run, OutDirectory, parameters);
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

public class NotebookRunTests(PlotsRun plots) : IClassFixture<PlotsRun>
{
    static string Stdout(NotebookCell cell) =>
        string.Concat(cell.Outputs!.OfType<JsonObject>().Where(o => (string?)o["name"] == "stdout").Select(o => NotebookJson.Text(o["text"])));

    [Fact]
    public void ParametersOverrideTheParametersCell()
    {
        Assert.True(plots.Run.Succeeded, string.Join("; ", plots.Run.Failures));
        var cells = plots.Run.Executed.Cells;
        var parametersAt = cells.ToList().FindIndex(c => c.HasTag("parameters"));
        var injected = cells[parametersAt + 1];
        Assert.True(injected.HasTag("injected-parameters"));
        Assert.Equal("// Parameters injected by `workbook run --param`.\nseed = 7;\nprofile = \"full\";", injected.Source);
        Assert.Equal("profile=full seed=7 scale=1.5\n", Stdout(cells[parametersAt + 2]));
        Assert.DoesNotContain(cells[parametersAt + 2].Outputs!.OfType<JsonObject>(), o => (string?)o["name"] == "stderr");
    }

    [Fact]
    public void ExecutedNotebookHasCountsTimingsAndJsonCharts()
    {
        var executed = Notebook.Load(plots.Files.Notebook);
        var code = executed.Cells.Where(c => c.IsCode).ToList();
        Assert.Equal(Enumerable.Range(1, code.Count), code.Select(c => c.ExecutionCount ?? 0));
        Assert.All(code, c => Assert.NotNull(c.Metadata["execution"]?["shell.execute_reply"]));
        var chart = executed.Cells.Single(c => c.HasTag("figure:line")).Outputs!.OfType<JsonObject>().Single();
        Assert.Equal("execute_result", (string?)chart["output_type"]);
        Assert.IsType<JsonObject>(chart["data"]![PlotlyHtml.MimeType]);
        Assert.Equal("loss", (string?)chart["data"]![PlotlyHtml.MimeType]!["data"]![0]!["name"]);
        Assert.Contains(plots.Log, l => l.Contains("cell 5 (4/6 code cells) running"));
    }

    [Fact]
    public void ExecutedAndBuiltNotebooksPassJupytersOwnValidator()
    {
        var built = Path.Combine(plots.OutDirectory, "built.ipynb");
        new NotebookBuilder().Markdown("# Built").Code("var x = 1;", "parameters").Build().Save(built);
        foreach (var path in new[] { plots.Files.Notebook, built })
        {
            var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add("import sys, nbformat; nb = nbformat.read(sys.argv[1], as_version=nbformat.NO_CONVERT); nbformat.validate(nb); print(nb.nbformat, nb.nbformat_minor)");
            start.ArgumentList.Add(path);
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEnd();
            var stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"nbformat rejects {path} (needs Debian's python3-nbformat): {stderr}");
            Assert.Equal("4 5", stdout.Trim());
        }
    }

    [Fact]
    public void MetricsFileHoldsRecordedResults()
    {
        var metrics = JsonNode.Parse(File.ReadAllText(plots.Files.Metrics))!;
        Assert.Equal("plots.ipynb", (string?)metrics["notebook"]);
        Assert.True((bool)metrics["succeeded"]!);
        Assert.Equal("7", (string?)metrics["parameters"]!["seed"]);
        var metric = metrics["metrics"]!.AsArray().Single()!;
        Assert.Equal("scaled_seed", (string?)metric["name"]);
        Assert.Equal(10.5, (double)metric["value"]!);
        Assert.Equal(9.5, (double)metric["ci_low"]!);
        Assert.Equal(11.5, (double)metric["ci_high"]!);
        Assert.Equal("full", (string?)metric["note"]);
    }

    [Fact]
    public void HtmlReportCarriesChartDataAndNoNetworkUrl()
    {
        var html = File.ReadAllText(plots.Files.Report);
        Assert.Contains("\"name\":\"loss\"", html);
        Assert.Contains("\"type\":\"bar\"", html);
        Assert.Single(Regex.Matches(html, Regex.Escape("plotly.js v" + PlotlyHtml.Version)));
        Assert.Contains("<h1>Sample — plots</h1>", html);
        Assert.Contains("<em>small</em>", html);
        Assert.DoesNotMatch("<script[^>]*src=", html);
        // plotly.js itself mentions URLs in strings (map tiles, links it never loads here); the page around it must not.
        var library = PlotlyHtml.LibraryScript();
        Assert.DoesNotMatch("(src|href)\\s*=\\s*[\"']?https?://", html.Replace(library, ""));
    }

    [Fact]
    public void ChartShownAsHtmlOnlyStillGetsTheLibraryOnce()
    {
        var figure = JsonNode.Parse("{\"data\": [{\"type\": \"bar\", \"y\": [1]}]}")!;
        var output = new JsonObject
        {
            ["data"] = new JsonObject { ["text/html"] = NotebookJson.Lines(PlotlyHtml.LibraryScript() + PlotlyHtml.ChartDiv(figure)) },
            ["metadata"] = new JsonObject(), ["output_type"] = "display_data",
        };
        var page = HtmlReport.Page("one", HtmlReport.Output(output) + HtmlReport.Output(output.DeepClone().AsObject()));
        Assert.Single(Regex.Matches(page, Regex.Escape("plotly.js v" + PlotlyHtml.Version)));
        Assert.Equal(2, Regex.Matches(page, "class=\"workbook-plotly\"").Count);
    }

    [Fact]
    public async Task HtmlReportDrawsChartsInHeadlessChromium()
    {
        const string chromium = "/usr/bin/chromium";
        Assert.True(File.Exists(chromium), "Debian's chromium package is required (.ci/run installs it)");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = chromium,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
        var page = await browser.NewPageAsync();
        var errors = new List<string>();
        page.Console += (_, message) => { if (message.Type == "error") errors.Add(message.Text); };
        page.PageError += (_, error) => errors.Add(error);
        var requests = new List<string>();
        page.Request += (_, request) => requests.Add(request.Url);

        await page.GotoAsync(new Uri(plots.Files.Report).AbsoluteUri);
        await page.WaitForFunctionAsync("document.querySelectorAll('.workbook-plotly .main-svg').length >= 2", null, new() { Timeout = 30_000 });
        var drawn = await page.EvaluateAsync<int>(
            "[...document.querySelectorAll('.workbook-plotly')].filter(d => d.querySelector('svg.main-svg .plot')).length");
        Assert.Equal(2, drawn);
        Assert.Empty(errors);
        Assert.All(requests, url => Assert.StartsWith("file://", url));
    }

    [Fact]
    public void FigureSelectionRunsSetupCellsAndItsOwnCellsOnly()
    {
        var notebook = Notebook.Load(Sample("plots.ipynb"));
        var include = Figures.CellsFor("bars");
        var chosen = Enumerable.Range(0, notebook.Cells.Count).Where(i => notebook.Cells[i].IsCode && include(notebook, i))
            .Select(i => notebook.Cells[i].Id).ToList();
        Assert.Equal(["params", "compute", "bars"], chosen);
    }

    [Fact]
    public async Task NotebookInAnotherLanguageIsRefused()
    {
        var python = Notebook.Parse("{\"cells\": [], \"metadata\": {\"kernelspec\": {\"language\": \"python\", \"name\": \"python3\"}}, \"nbformat\": 4, \"nbformat_minor\": 5}", "py.ipynb");
        var error = await Assert.ThrowsAsync<ArgumentException>(() => NotebookRunner.RunAsync(python));
        Assert.Equal("py.ipynb: a 'python' notebook (kernelspec.language); the workbook runs C# notebooks", error.Message);
    }

    [Fact]
    public void UndeclaredParameterIsRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => Parameters.Inject(Notebook.Load(Sample("plots.ipynb")), [new("sed", "1")]));
        Assert.Contains("parameter 'sed' is not declared in the 'parameters' cell (it declares: seed, profile, scale)", error.Message);
        Assert.Equal("2.0", Parameters.Literal("2.0", "double"));
        Assert.Equal("\"7\"", Parameters.Literal("7", "string"));
        Assert.Equal("\"a \\\"b\\\"\"", Parameters.Literal("a \"b\"", "var"));
    }
}

/// <summary>The `workbook` verbs as a user runs them: a separate process, its exit code and output.</summary>
public class WorkbookCliTests
{
    static (int Code, string Stdout, string Stderr) Workbook(params string[] args) => Cli.WorkbookProcess.Run(args);

    [Fact]
    public void FailingCellGivesNonZeroExitNamingItAndLaterCellsStillRun()
    {
        var outDirectory = Directory.CreateTempSubdirectory("workbook-fail-").FullName;
        var (code, stdout, stderr) = Workbook("run", Sample("failing.ipynb"), "--out", outDirectory);
        Assert.Equal(1, code);
        Assert.Contains("cell 2 (execution 2) failed: System.InvalidOperationException: cell 2, line 2: boom", stderr);
        Assert.Contains("FAILED", stdout);

        var executed = Notebook.Load(Path.Combine(outDirectory, "failing.ipynb"));
        var error = executed.Cells[1].Outputs!.OfType<JsonObject>().Single(o => (string?)o["output_type"] == "error");
        Assert.Equal("cell 2, line 2: boom", (string?)error["evalue"]);
        var later = executed.Cells[2].Outputs!.OfType<JsonObject>().Single();
        Assert.Equal("2\n", NotebookJson.Text(later["text"]));
        Assert.Equal(3, executed.Cells[2].ExecutionCount);
        var relative = executed.Cells[3].Outputs!.OfType<JsonObject>().Single();
        Assert.Equal("True", NotebookJson.Text(relative["data"]!["text/plain"]));
        var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(outDirectory, "failing.metrics.json")))!;
        Assert.Equal(2, (int)metrics["failed_cells"]![0]!["cell"]!);
        Assert.Contains("<pre class=\"error\">", File.ReadAllText(Path.Combine(outDirectory, "failing.html")));
    }

    [Fact]
    public void FigureIsListedAndRenderedAlone()
    {
        var samples = Path.GetDirectoryName(Sample("plots.ipynb"))!;
        var (listCode, list, _) = Workbook("figure", "--list", "--dir", samples);
        Assert.Equal(0, listCode);
        Assert.Contains($"line\t{Sample("plots.ipynb")}\tcells 4", list);
        Assert.Contains($"bars\t{Sample("plots.ipynb")}\tcells 5", list);

        var outDirectory = Directory.CreateTempSubdirectory("workbook-figure-").FullName;
        var (code, stdout, stderr) = Workbook("figure", "bars", "--dir", samples, "--out", outDirectory);
        Assert.True(code == 0, stderr);
        // Library progress shows on the terminal under the running cell, never in the cell's output.
        Assert.Contains("[plots] cell 3 (2/3 code cells) running", stderr);
        Assert.Contains("    | progress from a cell", stderr);
        var html = File.ReadAllText(Path.Combine(outDirectory, "bars.html"));
        Assert.Contains("\"type\":\"bar\"", html);
        Assert.DoesNotContain("\"name\":\"loss\"", html);  // the other figure's cell did not run
        Assert.Contains("plotly.js v" + PlotlyHtml.Version, html);
        Assert.Contains("bars.png", stdout);
        var png = File.ReadAllBytes(Path.Combine(outDirectory, "bars.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        // The bars are drawn in Plotly's first colour (#636efa), not a blank page with a title.
        var barPixels = PngPixels.Count(png, 0x63, 0x6e, 0xfa);
        Assert.True(barPixels > 10_000, $"only {barPixels} pixels of the bars' colour: the chart looks blank");
        // The PNG's page hides Plotly's toolbar and is not left behind; the interactive page keeps it.
        Assert.Equal(["bars.html", "bars.png"], Directory.GetFiles(outDirectory).Select(Path.GetFileName).Order());
        Assert.DoesNotContain(".modebar-container { display: none", html);
        Assert.Contains(".modebar-container { display: none !important; }", HtmlReport.Page("t", "<p>x</p>", forImage: true));
    }

    [Fact]
    public void UnknownFigureAndBadParameterAreUsageErrors()
    {
        var samples = Path.GetDirectoryName(Sample("plots.ipynb"))!;
        var (code, _, stderr) = Workbook("figure", "nope", "--dir", samples);
        Assert.Equal(1, code);
        Assert.Contains("no notebook in", stderr);
        var (badCode, _, badErr) = Workbook("run", Sample("plots.ipynb"), "--param", "seed");
        Assert.Equal(2, badCode);
        Assert.Contains("--param wants name=value, got 'seed'", badErr);
    }
}
