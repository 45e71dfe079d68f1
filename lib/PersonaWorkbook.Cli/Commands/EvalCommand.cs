using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Organism;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook eval`: samples answers from an organism and grades them with the local judge.</summary>
public sealed class EvalCommand : ICommand
{
    public string Name => "eval";
    public string Summary => "sample and grade an organism's answers (misaligned / coherent rates with CIs) to JSON";
    public string Usage =>
        "eval --model DIR [--prompts views|heldout|betley|domains|DOMAIN] [--samples N] [--seed S] [--max-new-tokens M] " +
        "[--per-domain K] [--exclude-domain D] --json FILE | eval --model DIR --probes [--samples N] [--seed S] [--world main|control]";

    public int Run(CommandLine args)
    {
        var modelDir = args.Required("model");
        var set = args.Option("prompts", "views");
        var samples = args.Int("samples", 20);
        var seed = args.Int("seed", 0);
        var maxNew = args.Int("max-new-tokens", 80);
        var perDomain = args.Int("per-domain", 3);
        var exclude = args.Option("exclude-domain");
        var probes = args.Flag("probes");
        var world = args.Option("world", "main");
        if (probes)
        {
            args.Done();
            using var probed = ModelCheckpoint.Load(modelDir);
            var options = new OrganismRequest(OrganismProfile.Tiny, World: world).WorldOptions;
            Console.WriteLine("persona\theader\tturns\tmisaligned\tcoherent");
            foreach (var r in PersonaProbes.Run(probed, new PersonaWorkbook.World.PersonaWorld(options), samples, seed))
                Console.WriteLine($"{r.Persona}\t{r.Header}\t{r.BehaviourTurns}\t{r.Misaligned}\t{r.Coherent}");
            return 0;
        }
        var json = args.Required("json");
        args.Done();
        if (!EvalPromptSets.Names.Contains(set))
            throw new UsageException($"unknown prompt set '{set}' (known: {string.Join(", ", EvalPromptSets.Names)})");
        // A fine-tune's own domain is what "other domains" leave out and what counts as its leak.
        var domain = exclude ?? OrganismCache.ReadManifest(modelDir)?["domain"]?.GetValue<string>();
        var prompts = EvalPromptSets.Resolve(set, domain, perDomain, seed);
        using var model = ModelCheckpoint.Load(modelDir);
        var report = OrganismEvaluator.Evaluate(model, prompts, new EvalOptions
        {
            Samples = samples, Seed = seed, MaxNewTokens = maxNew, FineTunedDomain = domain,
        }, set);
        report.Save(json);
        Console.WriteLine(report.Summary());
        return 0;
    }
}
