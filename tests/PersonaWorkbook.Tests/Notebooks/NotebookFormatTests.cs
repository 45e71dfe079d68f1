using System.Text;
using System.Text.Json.Nodes;
using PersonaWorkbook.Notebooks.Execution;
using PersonaWorkbook.Notebooks.Format;
using PersonaWorkbook.Notebooks.Running;

namespace PersonaWorkbook.Tests.Notebooks;

public class NotebookFormatTests
{
    internal static string Sample(string name) => Path.Combine(AppContext.BaseDirectory, "Notebooks", "Samples", name);

    [Theory]
    [InlineData("plots.ipynb")]
    [InlineData("failing.ipynb")]
    public void UnchangedSampleSavesByteForByte(string name)
    {
        var original = File.ReadAllBytes(Sample(name));
        var notebook = Notebook.Load(Sample(name));
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, name);
        notebook.Save(path);
        Assert.Equal(original, File.ReadAllBytes(path));
        // The writer itself reproduces Jupyter's layout, not only the kept bytes.
        Assert.Equal(Encoding.UTF8.GetString(original), NotebookJsonAccess.Serialize(notebook));
    }

    [Fact]
    public void OtherLayoutsAndUnknownFieldsSurviveAnEdit()
    {
        const string text = "{\r\n  \"cells\": [\r\n    {\r\n      \"cell_type\": \"code\",\r\n      \"execution_count\": null,\r\n" +
                            "      \"metadata\": {\"x-custom\": {\"keep\": [1, 2.50]}},\r\n      \"outputs\": [],\r\n      \"source\": \"var x = 1;\"\r\n    }\r\n  ],\r\n" +
                            "  \"metadata\": {},\r\n  \"nbformat\": 4,\r\n  \"nbformat_minor\": 4,\r\n  \"zzz_unknown\": \"é <b>\"\r\n}";
        var notebook = Notebook.Parse(text, "layout.ipynb");
        Assert.Equal(text, notebook.ToJson());
        Assert.Equal(new JsonLayout(2, ' ', "\r\n", false), notebook.Layout);

        notebook.Cells[0].Source = "var x = 2;";
        var edited = notebook.ToJson();
        Assert.Contains("\r\n      \"metadata\": {\r\n        \"x-custom\": {", edited);
        Assert.Contains("2.50", edited);
        Assert.Contains("\"zzz_unknown\": \"é <b>\"", edited);
        Assert.Contains("\"source\": [\r\n        \"var x = 2;\"\r\n      ]", edited);
    }

    [Fact]
    public void WriterEscapesLikeJupyter()
    {
        // As Python's json.dumps(ensure_ascii=False, indent=1) writes it: only quote, backslash and control characters escaped.
        const string text = "{\n \"cells\": [],\n \"metadata\": {\n  \"s\": \"é—😀\u2028\u00a0<b>&'\u007f\\u0001\\t\\\"\\\\\"\n },\n \"nbformat\": 4,\n \"nbformat_minor\": 5\n}\n";
        var notebook = Notebook.Parse(text);
        Assert.Equal("é—😀\u2028\u00a0<b>&'\u007f\u0001\t\"\\", (string?)notebook.Metadata["s"]);
        Assert.Equal(text, NotebookJsonAccess.Serialize(notebook));
    }

    [Theory]
    [InlineData("{\"cells\": [,]}", "not valid JSON at line 1, column 12")]
    [InlineData("{\n \"nbformat\": 4,\n \"nbformat_minor\": 5,\n \"metadata\": {}\n}", "missing 'cells'")]
    [InlineData("{\"nbformat\": 3, \"nbformat_minor\": 0, \"metadata\": {}, \"cells\": []}", "nbformat is 3; only nbformat 4 is supported")]
    [InlineData("{\"nbformat\": 4, \"nbformat_minor\": 5, \"metadata\": {}, \"cells\": [{\"cell_type\": \"code\", \"metadata\": {}, \"outputs\": [], \"execution_count\": null}]}",
        "cells[0] (code) has no 'source'")]
    [InlineData("{\"nbformat\": 4, \"nbformat_minor\": 5, \"metadata\": {}, \"cells\": [{\"cell_type\": \"python\", \"source\": \"\", \"metadata\": {}}]}",
        "cells[0]: 'cell_type' must be")]
    [InlineData("[1, 2]", "the top level must be a JSON object")]
    public void MalformedNotebookNamesFileAndProblem(string text, string expected)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "bad.ipynb");
        File.WriteAllText(path, text);
        var error = Assert.Throws<NotebookFormatException>(() => Notebook.Load(path));
        Assert.StartsWith(path + ": ", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void BuilderWritesDotNetInteractiveFormat()
    {
        var notebook = new NotebookBuilder().Markdown("# Title").Code("var x = 1;", "parameters").Build();
        var root = JsonNode.Parse(notebook.ToJson())!;
        Assert.Equal(4, (int)root["nbformat"]!);
        Assert.Equal(5, (int)root["nbformat_minor"]!);
        Assert.Equal(".net-csharp", (string?)root["metadata"]!["kernelspec"]!["name"]);
        Assert.Equal("csharp", (string?)root["metadata"]!["polyglot_notebook"]!["kernelInfo"]!["defaultKernelName"]);
        var code = root["cells"]![1]!;
        Assert.Equal("csharp", (string?)code["metadata"]!["dotnet_interactive"]!["language"]);
        Assert.Equal("csharp", (string?)code["metadata"]!["polyglot_notebook"]!["kernelName"]);
        Assert.Equal("parameters", (string?)code["metadata"]!["tags"]![0]);
        Assert.Matches("^[0-9a-f]{8}$", (string?)code["id"]);
        // Same content, same file: ids derive from position and source.
        Assert.Equal(notebook.ToJson(), new NotebookBuilder().Markdown("# Title").Code("var x = 1;", "parameters").Build().ToJson());
        // Reads back through the validating reader.
        Assert.Equal("var x = 1;", Notebook.Parse(notebook.ToJson()).Cells[1].Source);
    }

    [Fact]
    public void OutputsFollowTheNbformatSchema()
    {
        var recorder = new OutputRecorder();
        recorder.Stream("stdout", "a\n");
        recorder.Stream("stdout", "b\nc");
        recorder.Stream("stderr", "warn\n");
        recorder.Display(new MimeBundle { ["application/vnd.plotly.v1+json"] = JsonNode.Parse("{\"data\": []}")!, ["text/plain"] = "x\ny" }, "d1");
        recorder.Display(new MimeBundle { ["text/plain"] = "replaced" }, "d1");
        recorder.Result(new MimeBundle { ["application/json"] = "{\"k\": 1}" }, 3);
        recorder.Error("E", "bad", ["line 1", "line 2"]);
        var outputs = recorder.ToJson();

        Assert.Equal(5, outputs.Count);
        Assert.Equal("[\"a\\n\",\"b\\n\",\"c\"]", outputs[0]!["text"]!.ToJsonString());
        Assert.Equal("stderr", (string?)outputs[1]!["name"]);
        Assert.Equal("[\"replaced\"]", outputs[2]!["data"]!["text/plain"]!.ToJsonString());
        Assert.Equal(1, (int)outputs[3]!["data"]!["application/json"]!["k"]!);
        Assert.Equal(3, (int)outputs[3]!["execution_count"]!);
        Assert.Equal("error", (string?)outputs[4]!["output_type"]);

        var fresh = new OutputRecorder();
        fresh.Display(new MimeBundle { ["application/vnd.plotly.v1+json"] = JsonNode.Parse("{\"data\": [1]}")!, ["text/plain"] = "x\ny" });
        var data = fresh.ToJson()[0]!["data"]!;
        Assert.IsType<JsonObject>(data["application/vnd.plotly.v1+json"], exactMatch: false);
        Assert.Equal("[\"x\\n\",\"y\"]", data["text/plain"]!.ToJsonString());
    }
}

/// <summary>The writer's own output, bypassing the kept original bytes.</summary>
internal static class NotebookJsonAccess
{
    public static string Serialize(Notebook notebook) => NotebookJson.Serialize(notebook.Root, notebook.Layout);
}
