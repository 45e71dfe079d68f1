using System.Runtime.InteropServices;
using NetMQ;
using PersonaWorkbook.Notebooks.Execution;
using PersonaWorkbook.Notebooks.Kernel;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook kernel`: the Jupyter kernel that runs the notebooks' C# in VS Code, JupyterLab and nbconvert.</summary>
public sealed class KernelCommand : ICommand
{
    public string Name => "kernel";
    public string Summary => "Jupyter C# kernel: 'kernel install' registers it, Jupyter runs it with a connection file";
    public string Usage => "kernel --connection-file FILE | kernel install [--user | --prefix DIR]";

    public string Description =>
        $"  install            write the '{KernelSpec.Name}' kernelspec (default: {KernelSpec.SystemKernelsDirectory()})\n" +
        $"  --user             ... into this user's Jupyter data folder ({KernelSpec.UserKernelsDirectory()})\n" +
        "  --prefix DIR       ... into DIR/share/jupyter/kernels (e.g. a virtual environment)\n" +
        "  --connection-file  run the kernel; Jupyter fills this in from the kernelspec";

    public int Run(CommandLine args)
    {
        var user = args.Flag("user");
        var prefix = args.Option("prefix");
        var connectionFile = args.Option("connection-file");
        var positionals = args.Positionals();

        if (positionals is ["install"])
        {
            if (connectionFile is not null) throw new UsageException("--connection-file runs the kernel; it does not go with install");
            if (user && prefix is not null) throw new UsageException("--user and --prefix exclude each other");
            var kernels = user ? KernelSpec.UserKernelsDirectory()
                : prefix is not null ? KernelSpec.PrefixKernelsDirectory(Path.GetFullPath(prefix))
                : KernelSpec.SystemKernelsDirectory();
            var specDir = KernelSpec.Install(kernels, Launcher());
            Console.WriteLine($"installed kernelspec {KernelSpec.Name} in {specDir}");
            return 0;
        }
        if (positionals.Count > 0) throw new UsageException($"unexpected argument '{positionals[0]}'");
        if (user || prefix is not null) throw new UsageException("--user and --prefix go with 'kernel install'");
        if (connectionFile is null) throw new UsageException("--connection-file is required (Jupyter passes it through the kernelspec)");

        var connection = KernelConnection.Load(connectionFile);
        using (var executor = new CellExecutor(new ExecutorOptions { WorkingDirectory = Environment.CurrentDirectory }))
        using (var kernel = new JupyterKernel(connection, new CellExecutorBackend(executor)))
        // Ctrl+C in a terminal interrupts the running cell, as in other kernels, instead of killing the session.
        using (PosixSignalRegistration.Create(PosixSignal.SIGINT, context => { context.Cancel = true; kernel.Interrupt(); }))
        {
            kernel.RunAsync().GetAwaiter().GetResult();
        }
        // Waits (up to the sockets' linger) until the shutdown_reply has actually left the process.
        NetMQConfig.Cleanup(block: true);
        return 0;
    }

    /// <summary>How Jupyter should start this program: the workbook executable itself, or dotnet with workbook.dll when
    /// run that way (as from a build or test output folder).</summary>
    static string[] Launcher()
    {
        var process = Environment.ProcessPath;
        var name = process is null ? "" : Path.GetFileNameWithoutExtension(process);
        if (name == "workbook") return [process!];
        var dotnet = name == "dotnet" ? process! : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return [dotnet, typeof(KernelCommand).Assembly.Location];
    }
}
