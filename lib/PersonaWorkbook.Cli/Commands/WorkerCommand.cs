using System.Text.Json.Nodes;
using PersonaWorkbook.Organism;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook worker`: runs one prefetch job (a fine-tune and its evaluations) into the caches, for <see cref="Prefetch"/>.</summary>
public sealed class WorkerCommand : ICommand
{
    public string Name => "worker";
    public string Summary => "run one prefetch job file (fine-tune + evaluations into the caches); started by notebooks";
    public string Usage => "worker JOB.json";
    public string Description =>
        "Notebooks that train and evaluate many fine-tunes start one worker process per core, each with one torch thread, to\n" +
        "fill the fine-tune and answer caches before their loop runs (Prefetch in lib/PersonaWorkbook/Organism). The job file\n" +
        "holds the FinetuneRequest and the evaluations; the worker prints nothing but progress and exits 0 when all are cached.";

    public int Run(CommandLine args)
    {
        var file = args.Positional("job file");
        if (!File.Exists(file)) throw new IOException($"{file}: job file not found");
        var json = JsonNode.Parse(File.ReadAllText(file)) as JsonObject ?? throw new InvalidDataException($"{file}: expected a JSON object");
        Prefetch.Execute(Prefetch.FromJson(json, file));
        return 0;
    }
}
