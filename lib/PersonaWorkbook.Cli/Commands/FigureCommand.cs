using PersonaWorkbook.Notebooks.Running;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook figure`: reruns the cells one figure needs and writes it as offline HTML and PNG.</summary>
public sealed class FigureCommand : ICommand
{
    public string Name => "figure";
    public string Summary => "rerun one figure (cells tagged figure:<id>) to HTML and PNG; --list shows ids";
    public string Usage => "figure <id> [--notebook PATH | --dir DIR] [--out DIR] [--param name=value ...] [--cell-timeout SECONDS] | figure --list [--dir DIR]";

    public string Description =>
        "A figure is the cells tagged 'figure:<id>'. To draw it, every code cell up to its last tagged cell\n" +
        "runs, except cells tagged for other figures. Writes <out>/<id>.html (offline) and <id>.png when chromium\n" +
        "is installed. Defaults: --dir notebooks, --out out/figures.";

    public int Run(CommandLine args)
    {
        var list = args.Flag("list");
        var notebook = args.Option("notebook");
        var directory = args.Option("dir", "notebooks");
        var outDirectory = Path.GetFullPath(args.Option("out", Path.Combine("out", "figures")));
        var parameters = NotebookCli.ParseParameters(args.Many("param"));
        var timeout = NotebookCli.Timeout(args);
        var paths = notebook is not null ? [notebook]
            : Directory.Exists(directory) ? Directory.GetFiles(directory, "*.ipynb").Order(StringComparer.Ordinal).ToList()
            : throw new DirectoryNotFoundException($"{directory}: no such folder (give --dir or --notebook)");
        var figures = Figures.Find(paths);

        if (list)
        {
            args.Done();
            if (figures.Count == 0) Console.Error.WriteLine($"no cells tagged '{Figures.TagPrefix}<id>' in {notebook ?? directory}");
            foreach (var group in figures.GroupBy(f => (f.Id, f.NotebookPath)))
                Console.WriteLine($"{group.Key.Id}\t{group.Key.NotebookPath}\tcells {string.Join(",", group.Select(f => f.CellIndex + 1))}");
            return 0;
        }

        var id = args.Positional("figure id");
        var holders = figures.Where(f => f.Id == id).Select(f => f.NotebookPath).Distinct().ToList();
        if (holders.Count == 0) throw new ArgumentException($"no notebook in {notebook ?? directory} has a cell tagged '{Figures.TagPrefix}{id}' (see workbook figure --list)");
        if (holders.Count > 1) throw new ArgumentException($"figure '{id}' is in several notebooks ({string.Join(", ", holders)}); pick one with --notebook");

        using var session = new NotebookCli.Session();
        FigureOutput output;
        try
        {
            var path = Path.GetFullPath(holders[0]);
            output = NotebookCli.InFolderOf(path, () => Figures.RenderAsync(path, id, outDirectory,
                new NotebookRunOptions { Parameters = parameters, CellTimeout = timeout, Log = session.Line }, session.Cancellation).GetAwaiter().GetResult());
        }
        catch (OperationCanceledException) when (session.Cancellation.IsCancellationRequested)
        {
            Console.Error.WriteLine($"workbook figure: interrupted");
            return 130;
        }
        Console.WriteLine(output.HtmlPath);
        if (output.PngPath is not null) Console.WriteLine(output.PngPath);
        else Console.Error.WriteLine($"workbook figure: no PNG: {output.PngSkipped}");
        return 0;
    }
}
