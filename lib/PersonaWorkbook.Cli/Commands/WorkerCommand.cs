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
        Prefetch.Execute(Prefetch.ReadJob(args.Positional("job file")));
        return 0;
    }
}
