using System.Text.Json.Nodes;
using PersonaWorkbook.Dynamics;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Reinforcement;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>
/// `workbook worker`: runs prefetch jobs into the caches — a fine-tune and its evaluations (<see cref="Prefetch"/>)
/// a snapshot run (<see cref="TrainingDynamics.Prefetch"/>) or an RL run and its curve (<see cref="ReinforcementLearning.Prefetch"/>).
/// </summary>
public sealed class WorkerCommand : ICommand
{
    public string Name => "worker";
    public string Summary => "run prefetch job files (a fine-tune + evaluations, a snapshot run, an RL curve) into the caches; started by notebooks";
    public string Usage => "worker JOB.json | worker --serve";
    public string Description =>
        "Notebooks that train and evaluate many models start one worker process per core, each with one torch thread, to\n" +
        "fill the fine-tune, answer and snapshot caches before their loop runs (Prefetch in lib/PersonaWorkbook/Organism).\n" +
        "A job file holds a FinetuneRequest and its evaluations, a SnapshotRequest (under \"snapshot\") or an RlCurveRequest\n" +
        "(under \"rl_curve\"), whose latent probe names its SAE folder. With a file the worker runs that job and exits 0\n" +
        "when it is cached; with --serve it reads one job file path per line on standard input and answers each on standard\n" +
        $"output with \"{Prefetch.ReplyPrefix}ok\" or \"{Prefetch.ReplyPrefix}failed: why\", until its input closes. Progress\n" +
        "goes to standard error.";

    public int Run(CommandLine args)
    {
        if (!args.Flag("serve"))
        {
            RunJob(args.Positional("job file"));
            return 0;
        }
        while (Console.In.ReadLine() is { } path)
        {
            string reply;
            try
            {
                RunJob(path);
                reply = "ok";
            }
            catch (Exception e)
            {
                Console.Error.WriteLine(e);
                reply = "failed: " + e.Message.ReplaceLineEndings(" ");
            }
            Console.Out.WriteLine(Prefetch.ReplyPrefix + reply);
            Console.Out.Flush();
        }
        return 0;
    }

    static void RunJob(string path)
    {
        var job = Prefetch.ReadJobFile(path);
        if (job["snapshot"] is JsonObject snapshot)
        {
            var request = SnapshotRequest.FromJson(snapshot, path);
            try { TrainingDynamics.RunOrReuse(request); }
            finally { request.Latent?.Sae.Dispose(); }
        }
        else if (job["rl_curve"] is JsonObject curve)
        {
            var request = RlCurveRequest.FromJson(curve, path);
            try { ReinforcementLearning.CurveOrReuse(request); }
            finally { request.Latent?.Sae.Dispose(); }
        }
        else Prefetch.Execute(Prefetch.FromJson(job, path));
    }
}
