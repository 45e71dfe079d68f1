using System.Diagnostics;
using System.Security.Cryptography;
using PersonaWorkbook.Notebooks.Kernel;

namespace PersonaWorkbook.Tests.Kernel;

/// <summary>The kernel against Debian's jupyter_client (python3-jupyter-client, installed by .ci/run).</summary>
public class JupyterClientTests
{
    internal const string Python = "/usr/bin/python3";

    internal static string Sample(string name) => Path.Combine(AppContext.BaseDirectory, "Kernel", "Samples", name);

    /// <summary>Runs a process to completion; returns its exit code and stdout+stderr.</summary>
    internal static (int ExitCode, string Output) RunProcess(string file, IEnumerable<string> args, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        Assert.True(File.Exists(file), $"{file} is missing (CI installs python3-jupyter-client, jupyter-nbconvert, python3-nbclient)");
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', start.ArgumentList)} ran over {timeout}:\n{stdout.Result}{stderr.Result}");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    [Fact]
    public void Jupyter_client_gets_no_reply_to_a_forged_message_and_a_verified_reply_to_a_signed_one()
    {
        var log = new StringWriter();
        using var kernel = new JupyterKernel(new KernelConnection { Key = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)) },
            new FakeBackend(), log);
        _ = kernel.RunAsync();
        var dir = Directory.CreateTempSubdirectory("workbook-kernel-");
        try
        {
            var connectionFile = Path.Combine(dir.FullName, "kernel.json");
            File.WriteAllText(connectionFile, kernel.Connection.ToJson());

            var (exit, output) = RunProcess(Python, [Sample("wrong_signature.py"), connectionFile], TimeSpan.FromSeconds(90));

            Assert.True(exit == 0, output);
            Assert.Contains("\"forged_answered\": false", output);
            Assert.Contains("\"reply_type\": \"kernel_info_reply\"", output);
            Assert.Contains("rejected a message on shell: invalid HMAC signature", log.ToString());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
