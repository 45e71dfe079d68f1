using System.Text.Json.Nodes;
using static PersonaWorkbook.Tests.Kernel.JupyterClientTests;

namespace PersonaWorkbook.Tests.Kernel;

/// <summary>
/// `workbook kernel install --prefix` into a temporary folder, and the Jupyter environment variables that make it the
/// only kernelspec Debian's Jupyter sees (nothing read from or written to the user's Jupyter folders). Its argv is
/// dotnet + the workbook.dll in this test's output folder.
/// </summary>
sealed class InstalledKernelspec : IDisposable
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("workbook-kernelspec-").FullName;
    public Dictionary<string, string> Environment { get; }

    public InstalledKernelspec()
    {
        var (exit, output) = RunProcess(DotnetHost(),
            [Path.Combine(AppContext.BaseDirectory, "workbook.dll"), "kernel", "install", "--prefix", Folder], TimeSpan.FromSeconds(60));
        Assert.True(exit == 0, output);
        Environment = new Dictionary<string, string>
        {
            ["JUPYTER_PATH"] = Path.Combine(Folder, "share", "jupyter"),
            ["JUPYTER_DATA_DIR"] = Path.Combine(Folder, "data"),
            ["JUPYTER_CONFIG_DIR"] = Path.Combine(Folder, "config"),
            ["JUPYTER_RUNTIME_DIR"] = Path.Combine(Folder, "runtime"),
        };
    }

    static string DotnetHost()
    {
        var process = System.Environment.ProcessPath;
        if (process is not null && Path.GetFileNameWithoutExtension(process) == "dotnet") return process;
        return System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "/usr/bin/dotnet";
    }

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}

/// <summary>The path a user takes: the installed kernelspec, started by Debian's Jupyter, running real C# through the engine.</summary>
public class InstalledKernelTests
{
    static string Text(JsonNode? node) => node switch
    {
        JsonArray lines => string.Concat(lines.Select(l => l!.GetValue<string>())), // nbformat's multiline strings
        null => "",
        _ => node.GetValue<string>(),
    };

    [Fact]
    public void Nbconvert_executes_a_notebook_with_the_installed_workbook_kernel()
    {
        using var spec = new InstalledKernelspec();
        var kernelJson = JsonNode.Parse(File.ReadAllText(Path.Combine(spec.Folder, "share", "jupyter", "kernels", "workbook-csharp", "kernel.json")))!;
        Assert.Equal("{connection_file}", kernelJson["argv"]!.AsArray().Last()!.GetValue<string>());

        var notebook = Path.Combine(spec.Folder, "kernel-roundtrip.ipynb");
        File.Copy(Sample("kernel-roundtrip.ipynb"), notebook);
        var (exit, output) = RunProcess(Python,
            ["-m", "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
             "--ExecutePreprocessor.kernel_name=workbook-csharp", "--ExecutePreprocessor.timeout=300",
             "--output", "executed", "--output-dir", spec.Folder, notebook],
            TimeSpan.FromMinutes(5), spec.Environment, spec.Folder);
        Assert.True(exit == 0, output);

        var executed = JsonNode.Parse(File.ReadAllText(Path.Combine(spec.Folder, "executed.ipynb")))!;
        var cells = executed["cells"]!.AsArray().ToDictionary(c => c!["id"]!.GetValue<string>(), c => c!);
        JsonArray Outputs(string id) => cells[id]["outputs"]!.AsArray();

        var streams = Outputs("state").ToDictionary(o => o!["name"]!.GetValue<string>(), o => Text(o!["text"]));
        Assert.Equal("hello from C#\n", streams["stdout"]);
        Assert.Equal("step 1/1\n", streams["stderr"]); // library progress lines reach the notebook

        var value = Assert.Single(Outputs("value"));
        Assert.Equal("execute_result", value!["output_type"]!.GetValue<string>());
        Assert.Equal("42", Text(value["data"]!["text/plain"]).Trim());
        Assert.Equal(cells["value"]["execution_count"]!.GetValue<int>(), value["execution_count"]!.GetValue<int>());

        var error = Assert.Single(Outputs("failure"));
        Assert.Equal("error", error!["output_type"]!.GetValue<string>());
        Assert.Contains("deliberate failure", error["evalue"]!.GetValue<string>());

        // The failed cell left the kernel running with its variables.
        var after = Assert.Single(Outputs("after-failure"));
        Assert.Equal("80", Text(after!["data"]!["text/plain"]).Trim());

        var chart = Outputs("chart").Single(o => o!["data"]?["application/vnd.plotly.v1+json"] is not null)!;
        var figure = Assert.IsType<JsonObject>(chart["data"]!["application/vnd.plotly.v1+json"]);
        var trace = figure["data"]!.AsArray()[0]!;
        Assert.Equal("scatter", trace["type"]!.GetValue<string>());
        Assert.Equal([1, 4, 9], trace["y"]!.AsArray().Select(v => v!.GetValue<int>()));

        var counts = new[] { "state", "value", "failure", "after-failure", "chart" }.Select(id => cells[id]["execution_count"]!.GetValue<int>());
        Assert.Equal([1, 2, 3, 4, 5], counts);
    }

    [Fact]
    public void Kernel_manager_interrupts_a_running_cell_keeps_state_and_shuts_the_kernel_down()
    {
        using var spec = new InstalledKernelspec();
        var (exit, output) = RunProcess(Python, [Sample("interrupt_shutdown.py")], TimeSpan.FromMinutes(5), spec.Environment, spec.Folder);
        Assert.True(exit == 0, output);
        var seen = JsonNode.Parse(output.Split('\n').First(l => l.StartsWith('{')))!;

        Assert.Equal("ok", seen["define"]!.GetValue<string>());
        Assert.Equal(["error", "OperationCanceledException"], seen["interrupted"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal(["42"], seen["after_interrupt"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.True(seen["exited_by_itself"]!.GetValue<bool>(), "the kernel process did not exit after shutdown_request");
        Assert.Equal(0, seen["returncode"]!.GetValue<int>());
    }
}
