using System.Globalization;
using PersonaWorkbook.Notebooks.Format;
using PersonaWorkbook.Notebooks.Running;
using PersonaWorkbook.Reporting;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook run`: executes notebooks headless and writes the executed notebook, an offline HTML report and metrics.</summary>
public sealed class RunCommand : ICommand
{
    public string Name => "run";
    public string Summary => "execute notebooks; write executed .ipynb, offline HTML report, metrics.json";
    public string Usage => "run <notebook.ipynb|folder> [--out DIR] [--param name=value ...] [--cell-timeout SECONDS]";

    public string Description =>
        "Runs every C# cell top to bottom (failed cells are reported, later cells still run) and writes\n" +
        "<out>/<name>.ipynb, <name>.html and <name>.metrics.json. --param overrides variables of the cell tagged\n" +
        "'parameters' (int, double and bool values are parsed, anything else is a string). Default --out: out.";

    public int Run(CommandLine args)
    {
        var outDirectory = Path.GetFullPath(args.Option("out", "out"));
        var parameters = NotebookCli.ParseParameters(args.Many("param"));
        var timeout = NotebookCli.Timeout(args);
        var target = args.Positional("notebook or folder");

        var notebooks = (Directory.Exists(target)
            ? Directory.GetFiles(target, "*.ipynb").Order(StringComparer.Ordinal).ToList()
            : File.Exists(target) ? [target] : throw new FileNotFoundException($"{target}: no such notebook or folder"))
            .Select(Path.GetFullPath).ToList();
        if (notebooks.Count == 0) throw new FileNotFoundException($"{target}: the folder holds no .ipynb notebooks");

        var failed = 0;
        using var session = new NotebookCli.Session();
        foreach (var path in notebooks)
        {
            NotebookRunResult run;
            try
            {
                run = NotebookCli.InFolderOf(path, () => NotebookRunner.RunAsync(Notebook.Load(path),
                    new NotebookRunOptions { Parameters = parameters, CellTimeout = timeout, Log = session.Line },
                    session.Cancellation).GetAwaiter().GetResult());
            }
            catch (OperationCanceledException) when (session.Cancellation.IsCancellationRequested)
            {
                Console.Error.WriteLine($"workbook run: interrupted in {path}; nothing written for it");
                return 130;
            }
            var files = NotebookOutputs.Write(path, run, outDirectory, parameters);
            Console.WriteLine($"{path}: {(run.Succeeded ? "ok" : "FAILED")} in {run.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s -> {files.Notebook}, {files.Report}, {files.Metrics}");
            foreach (var failure in run.Failures) Console.Error.WriteLine($"workbook run: {path}: {failure}");
            if (!run.Succeeded) failed++;
        }
        return failed == 0 ? 0 : 1;
    }
}

/// <summary>What `run` and `figure` share: parameters, the time limit, and progress on the terminal.</summary>
internal static class NotebookCli
{
    public static List<KeyValuePair<string, string>> ParseParameters(IEnumerable<string> values) =>
        values.Select(v =>
        {
            var eq = v.IndexOf('=');
            if (eq <= 0) throw new UsageException($"--param wants name=value, got '{v}'");
            return KeyValuePair.Create(v[..eq], v[(eq + 1)..]);
        }).ToList();

    /// <summary>
    /// Runs with the notebook's folder as the current directory, as Jupyter and VS Code run notebooks, so the
    /// relative paths in cells mean the same everywhere. Paths given on the command line must be full by now.
    /// </summary>
    public static T InFolderOf<T>(string notebookPath, Func<T> run)
    {
        var previous = Environment.CurrentDirectory;
        Environment.CurrentDirectory = Path.GetDirectoryName(Path.GetFullPath(notebookPath))!;
        try { return run(); }
        finally { Environment.CurrentDirectory = previous; }
    }

    public static TimeSpan? Timeout(CommandLine args)
    {
        var seconds = args.Double("cell-timeout", 0);
        if (seconds < 0) throw new UsageException("--cell-timeout must be positive");
        return seconds > 0 ? TimeSpan.FromSeconds(seconds) : null;
    }

    /// <summary>
    /// Progress lines on the terminal's stderr, written to the raw stream: Console.Error is captured into the
    /// running cell's output. Library progress (Progress.Report) is shown indented under the cell. Ctrl+C cancels.
    /// </summary>
    public sealed class Session : IDisposable
    {
        static readonly TextWriter Terminal = new StreamWriter(Console.OpenStandardError()) { AutoFlush = true };
        readonly CancellationTokenSource _cancel = new();
        readonly object _lock = new();

        public Session()
        {
            Progress.Reported += OnProgress;
            Console.CancelKeyPress += OnCancel;
        }

        public CancellationToken Cancellation => _cancel.Token;

        public void Line(string text)
        {
            lock (_lock) Terminal.WriteLine(text);
        }

        void OnProgress(string line) => Line("    | " + line);

        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            e.Cancel = true;
            _cancel.Cancel();
        }

        public void Dispose()
        {
            Progress.Reported -= OnProgress;
            Console.CancelKeyPress -= OnCancel;
            _cancel.Dispose();
        }
    }
}
