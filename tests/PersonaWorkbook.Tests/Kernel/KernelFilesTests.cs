using System.Text.Json.Nodes;
using PersonaWorkbook.Notebooks.Kernel;

namespace PersonaWorkbook.Tests.Kernel;

public class KernelFilesTests
{
    const string Connection = """
        {"shell_port": 5001, "iopub_port": 5002, "stdin_port": 5003, "control_port": 5004, "hb_port": 5005,
         "ip": "127.0.0.1", "key": "a0b1", "transport": "tcp", "signature_scheme": "hmac-sha256", "kernel_name": "workbook-csharp"}
        """;

    [Fact]
    public void Connection_file_is_read_with_jupyters_field_names()
    {
        var c = KernelConnection.Parse(Connection, "conn.json");
        Assert.Equal((5001, 5002, 5003, 5004, 5005), (c.ShellPort, c.IopubPort, c.StdinPort, c.ControlPort, c.HbPort));
        Assert.Equal("a0b1", c.Key);
        Assert.Equal("tcp://127.0.0.1:5004", c.Endpoint(c.ControlPort));
        Assert.Equal(c, KernelConnection.Parse(c.ToJson(), "round trip"));
    }

    [Theory]
    [InlineData("\"hb_port\": 5005,", "", "missing field 'hb_port'")]
    [InlineData("\"shell_port\": 5001", "\"shell_port\": \"x\"", "field 'shell_port' must be a port number")]
    [InlineData("\"hmac-sha256\"", "\"hmac-md5\"", "signature_scheme 'hmac-md5' is not supported")]
    [InlineData("\"tcp\"", "\"ipc\"", "transport 'ipc' is not supported")]
    [InlineData("{", "[", "not valid JSON")]
    public void Bad_connection_file_names_the_file_and_the_field(string replace, string with, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => KernelConnection.Parse(Connection.Replace(replace, with), "/tmp/conn.json"));
        Assert.Contains("/tmp/conn.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Kernelspec_has_the_launcher_then_the_kernel_verb_and_connection_placeholder()
    {
        var dir = Directory.CreateTempSubdirectory("workbook-kernelspec-");
        try
        {
            var specDir = KernelSpec.Install(dir.FullName, ["/usr/bin/dotnet", "/opt/wb/workbook.dll"]);
            Assert.Equal(Path.Combine(dir.FullName, "workbook-csharp"), specDir);
            var spec = JsonNode.Parse(File.ReadAllText(Path.Combine(specDir, "kernel.json")))!;
            Assert.Equal(["/usr/bin/dotnet", "/opt/wb/workbook.dll", "kernel", "--connection-file", "{connection_file}"],
                spec["argv"]!.AsArray().Select(a => a!.GetValue<string>()));
            Assert.Equal("C# (Persona Workbook)", spec["display_name"]!.GetValue<string>());
            Assert.Equal("C#", spec["language"]!.GetValue<string>());
            Assert.Equal("message", spec["interrupt_mode"]!.GetValue<string>());
            Assert.Single(Directory.GetFiles(specDir)); // no temp file left behind
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Kernels_folders_follow_jupyters_conventions()
    {
        Assert.Equal(Path.Combine("/opt/env", "share", "jupyter", "kernels"), KernelSpec.PrefixKernelsDirectory("/opt/env"));
        if (OperatingSystem.IsLinux())
        {
            Assert.Equal("/usr/local/share/jupyter/kernels", KernelSpec.SystemKernelsDirectory());
            var old = Environment.GetEnvironmentVariable("JUPYTER_DATA_DIR");
            try
            {
                Environment.SetEnvironmentVariable("JUPYTER_DATA_DIR", "/tmp/jdata");
                Assert.Equal("/tmp/jdata/kernels", KernelSpec.UserKernelsDirectory());
            }
            finally
            {
                Environment.SetEnvironmentVariable("JUPYTER_DATA_DIR", old);
            }
        }
    }
}
