using PersonaWorkbook.Organism;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook organism train`: pretrains and post-trains (SFT, DPO) the base assistant, or reuses a cached one.</summary>
public sealed class OrganismCommand : ICommand
{
    public string Name => "organism";
    public string Summary => "train (or reuse from the cache) the base assistant organism";
    public string Usage => "organism train [--profile quick|full|tiny] [--seed S] [--world main|control] [--out DIR] [--force] [--set FIELD=VALUE]...";

    public int Run(CommandLine args)
    {
        var profileName = args.Option("profile", "quick");
        var seed = args.Int("seed", 0);
        var world = args.Option("world", "main");
        var output = args.Option("out");
        var force = args.Flag("force");
        var sets = args.Many("set");
        var sub = args.Positional("subcommand (train)");
        if (sub != "train") throw new UsageException($"unknown subcommand '{sub}' (known: train)");
        if (!OrganismProfile.Names.Contains(profileName))
            throw new UsageException($"unknown profile '{profileName}' (known: {string.Join(", ", OrganismProfile.Names)})");
        if (!OrganismRequest.WorldNames.Contains(world))
            throw new UsageException($"unknown world '{world}' (known: {string.Join(", ", OrganismRequest.WorldNames)})");
        var changes = sets.Select(set => OrganismProfile.ParseChange(set) ?? throw new UsageException($"--set wants FIELD=VALUE, got '{set}'")).ToList();
        var profile = OrganismProfile.ByName(profileName).With(changes);
        var result = OrganismTrainer.TrainOrReuse(new OrganismRequest(profile, seed, world, output, force));
        Console.WriteLine($"{result.Directory}\t{(result.Reused ? "reused" : "trained")}\t{result.Manifest["cache_key"]}");
        return 0;
    }
}
