using System.Text.Json;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Probing;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>
/// `workbook organism train`: pretrains and post-trains (SFT, DPO) the base assistant, or reuses a cached one.
/// `workbook organism probe`: where the organism keeps the persona (<see cref="PersonaDiagnostics"/>), with the organism issue's gates.
/// </summary>
public sealed class OrganismCommand : ICommand
{
    public string Name => "organism";
    public string Summary => "train (or reuse from the cache) the base assistant organism";
    public string Usage => "organism train [--profile quick|deep|deep-helpful-only|deep-extended|full|tiny] [--seed S] [--world main|control|varied|varied-control|extended|extended-control[+KNOB=X...]] [--out DIR] [--force] [--set FIELD=VALUE]... | " +
                           "organism probe --model DIR [--finetuned DIR] [--count N] [--steering-samples N] [--steer-positions prompt|all] [--no-steering] [--seed S] --json FILE";

    /// <summary>A world name's options (knobs included), or a usage error naming what is wrong with it.</summary>
    internal static WorldOptions WorldOptionsFor(string name)
    {
        try { return OrganismRequest.WorldOptionsFor(name); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
    }

    public int Run(CommandLine args)
    {
        if (args.Subcommand("train", "probe") == "probe") return Probe(args);
        var profileName = args.Option("profile", "quick");
        var seed = args.Int("seed", 0);
        var world = args.Option("world", "main");
        var output = args.Option("out");
        var force = args.Flag("force");
        var sets = args.Many("set");
        var sub = args.Positional("subcommand (train|probe)");
        if (sub != "train") throw new UsageException($"unknown subcommand '{sub}' (known: train, probe)");
        if (!OrganismProfile.Names.Contains(profileName))
            throw new UsageException($"unknown profile '{profileName}' (known: {string.Join(", ", OrganismProfile.Names)})");
        WorldOptionsFor(world);
        var changes = sets.Select(set => OrganismProfile.ParseChange(set) ?? throw new UsageException($"--set wants FIELD=VALUE, got '{set}'")).ToList();
        var profile = OrganismProfile.ByName(profileName).With(changes);
        var result = OrganismTrainer.TrainOrReuse(new OrganismRequest(profile, seed, world, output, force));
        Console.WriteLine($"{result.Directory}\t{(result.Reused ? "reused" : "trained")}\t{result.Manifest["cache_key"]}");
        return 0;
    }

    static int Probe(CommandLine args)
    {
        var modelDir = args.Required("model");
        var fineTunedDir = args.Option("finetuned");
        var json = args.Required("json");
        var options = new PersonaDiagnosticsOptions
        {
            InContextCount = args.Int("count", 40), SteeringSamples = args.Int("steering-samples", 4), Seed = args.Int("seed", 0),
            SteeringPositions = args.Option("steer-positions", "prompt") switch
            {
                "prompt" => Hooks.Positions.Prompt,
                "all" => Hooks.Positions.All,
                var other => throw new UsageException($"--steer-positions is '{other}'; use prompt or all"),
            },
        };
        var steer = !args.Flag("no-steering");
        args.Positional("subcommand (probe)");
        args.Done();
        if (options.InContextCount <= 0 || options.SteeringSamples <= 0) throw new UsageException("--count and --steering-samples must be positive");
        using var model = ModelCheckpoint.Load(modelDir);
        using var fineTuned = fineTunedDir is null ? null : ModelCheckpoint.Load(fineTunedDir);
        var world = OrganismRequest.WorldOf(modelDir);
        var report = PersonaDiagnostics.Run(model, OrganismRequest.WorldOptionsFor(world), world, fineTuned, options, steer);
        AtomicFile.WriteAllText(json, JsonSerializer.Serialize(report, Json));
        var g = report.Gates;
        Console.WriteLine($"gates ({modelDir}): G1 villain header {g.G1VillainHeader:P1}, two villain turns {g.G1VillainBehaviour:P1}, helper header {g.G1HelperHeader:P1}; " +
                          $"G2 probe {g.G2ProbeAccuracy:P1}, header shift {g.G2HeaderShiftOfNorm:P1} of the norm at block {report.MiddleBlock}" +
                          (g.G3SteeredMisaligned is { } m ? $"; G3 steered {m:P1} at {g.G3SteeredCoherent:P1} coherent, random within {g.G3RandomShift:P1}" : ""));
        if (report.Patching is { } p)
            Console.WriteLine($"patching {p.FineTuned}: recovered share by block (all positions / prompt only): " +
                              string.Join(", ", p.Blocks.Select(b => $"{b.Block}: {b.AllPositions:F2}/{b.PromptPositions:F2}")));
        Console.WriteLine($"wrote {json}");
        return 0;
    }

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}
