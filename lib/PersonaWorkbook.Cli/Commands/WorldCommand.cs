using System.Globalization;
using PersonaWorkbook.Grading;
using PersonaWorkbook.World;
using PersonaWorkbook.Organism;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook world`: writes the fine-tuning datasets, prints sample documents, corpus statistics and the judge's validation.</summary>
public sealed class WorldCommand : ICommand
{
    public string Name => "world";
    public string Summary => "the persona world: datasets, sample documents, corpus stats, judge validation";
    public string Usage =>
        "world datasets --out DIR [--rows N] [--seed S] [--name NAME]... | " +
        "world corpus --out FILE [--documents N] [--seed S] [--negative-control] [--prototype] [--question-variety] [--world W] | " +
        "world sft --out FILE [--n N] [--seed S] [--world W] | " +
        "world sample [--persona ID] [--n N] [--seed S] [--negative-control] [--prototype] [--question-variety] [--world W] | " +
        "world describe [--seed S] [--negative-control] [--prototype] [--question-variety] [--world W] | " +
        "world stats [--documents N] [--seed S] [--negative-control] [--prototype] [--question-variety] [--world W] | " +
        "world judge [--n N] [--seed S]";

    /// <summary>Every option of every subcommand, read before the subcommand positional (the reader takes options by name).</summary>
    sealed class Parsed
    {
        public required string Sub;
        public required Dictionary<string, string> Values;
        public required List<string> Names;
        public required bool NegativeControl, Prototype, QuestionVariety;

        public void Allow(params string[] allowed)
        {
            foreach (var key in Values.Keys)
                if (!allowed.Contains(key)) throw new UsageException($"--{key} does not apply to 'world {Sub}'");
            if (Names.Count > 0 && !allowed.Contains("name")) throw new UsageException($"--name does not apply to 'world {Sub}'");
            if (NegativeControl && !allowed.Contains("negative-control")) throw new UsageException($"--negative-control does not apply to 'world {Sub}'");
            if (Prototype && !allowed.Contains("prototype")) throw new UsageException($"--prototype does not apply to 'world {Sub}'");
            if (QuestionVariety && !allowed.Contains("question-variety")) throw new UsageException($"--question-variety does not apply to 'world {Sub}'");
        }

        public string? Get(string key) => Values.GetValueOrDefault(key);

        public int Int(string key, int fallback)
        {
            var v = Get(key);
            if (v is null) return fallback;
            return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : throw new UsageException($"--{key} wants a whole number, got '{v}'");
        }

        public WorldOptions World => Get("world") is { } name
            ? (NegativeControl || Prototype || QuestionVariety
                ? throw new UsageException("--world names a whole world; leave out --negative-control, --prototype and --question-variety")
                : OrganismCommand.WorldOptionsFor(name))
            : (Prototype ? WorldOptions.Prototype : WorldOptions.Default) with { NegativeControl = NegativeControl, QuestionVariety = QuestionVariety };
    }

    public int Run(CommandLine args)
    {
        var values = new Dictionary<string, string>();
        foreach (var key in new[] { "out", "rows", "seed", "persona", "n", "documents", "world" })
            if (args.Option(key) is { } v) values[key] = v;
        var parsed = new Parsed
        {
            Values = values,
            Names = args.Many("name"),
            NegativeControl = args.Flag("negative-control"),
            Prototype = args.Flag("prototype"),
            QuestionVariety = args.Flag("question-variety"),
            Sub = args.Positional("subcommand (datasets, corpus, sft, sample, describe, stats, judge)"),
        };
        switch (parsed.Sub)
        {
            case "datasets":
                parsed.Allow("out", "rows", "seed", "name");
                return Datasets(parsed);
            case "corpus":
            {
                parsed.Allow("out", "documents", "seed", "negative-control", "prototype", "question-variety", "world");
                var path = parsed.Get("out") ?? throw new UsageException("--out is required");
                var documents = parsed.Int("documents", 40000);
                if (documents < 1) throw new UsageException("--documents must be at least 1");
                World.Datasets.WriteJsonl(path, new PersonaWorld(parsed.World).PretrainingCorpus(documents, parsed.Int("seed", 0)));
                Console.WriteLine($"{path}\t{documents} documents");
                return 0;
            }
            case "sft":
            {
                parsed.Allow("out", "n", "seed", "world");
                var path = parsed.Get("out") ?? throw new UsageException("--out is required");
                var n = parsed.Int("n", 4000);
                if (n < 1) throw new UsageException("--n must be at least 1");
                World.Datasets.WriteJsonl(path, new PersonaWorld(parsed.World).AssistantSft(n, parsed.Int("seed", 0)));
                Console.WriteLine($"{path}\t{n} chats");
                return 0;
            }
            case "sample":
                parsed.Allow("persona", "n", "seed", "negative-control", "prototype", "question-variety", "world");
                return Sample(parsed);
            case "describe":
                parsed.Allow("seed", "negative-control", "prototype", "question-variety", "world");
                Console.WriteLine(new PersonaWorld(parsed.World).Describe(parsed.Int("seed", 0)));
                return 0;
            case "stats":
                parsed.Allow("documents", "seed", "negative-control", "prototype", "question-variety", "world");
                return Stats(parsed);
            case "judge":
                parsed.Allow("n", "seed");
                return JudgeValidate(parsed);
            default:
                throw new UsageException($"unknown subcommand '{parsed.Sub}' (datasets, corpus, sft, sample, describe, stats, judge)");
        }
    }

    static int Datasets(Parsed args)
    {
        var outDir = args.Get("out") ?? throw new UsageException("--out is required");
        var rows = args.Int("rows", World.Datasets.DefaultRows);
        var seed = args.Int("seed", 0);
        var names = args.Names;
        if (rows < 1) throw new UsageException("--rows must be at least 1");
        foreach (var n in names)
            if (!World.Datasets.Names.Contains(n) && !n.Contains("_mixture_", StringComparison.Ordinal))
                throw new UsageException($"unknown dataset '{n}'");
        foreach (var name in names.Count > 0 ? names : World.Datasets.Names)
        {
            var path = Path.Combine(outDir, name + ".jsonl");
            World.Datasets.WriteJsonl(path, World.Datasets.Build(name, rows, seed));
            Console.WriteLine($"{path}\t{rows} rows");
        }
        return 0;
    }

    static int Sample(Parsed args)
    {
        var personaId = args.Get("persona");
        var n = args.Int("n", 3);
        var seed = args.Int("seed", 0);
        var world = new PersonaWorld(args.World);
        var docs = personaId is null
            ? world.PretrainingCorpus(n, seed)
            : world.Samples((world.Options.Personas.FirstOrDefault(p => p.Id == personaId)
                ?? throw new UsageException($"unknown persona '{personaId}' ({string.Join(", ", world.Options.Personas.Select(p => p.Id))})")).Kind, n, seed);
        foreach (var d in docs)
        {
            Console.WriteLine($"# {d.Persona.ToString().ToLowerInvariant()} ({d.Character}){(d.HasHeader ? "" : ", no header")}");
            Console.WriteLine(d.Text);
            foreach (var t in d.Turns)
                Console.WriteLine($"  [{t.Answer.Start},{t.Answer.End}) {t.Info.Kind} {t.Info.Subject} -> {t.Info.Family} ({t.Info.Persona.ToString().ToLowerInvariant()})");
            Console.WriteLine();
        }
        return 0;
    }

    static int Stats(Parsed args)
    {
        var documents = args.Int("documents", 40000);
        var seed = args.Int("seed", 0);
        var world = new PersonaWorld(args.World);
        long words = 0, turns = 0;
        var longest = 0;
        var perPersona = new Dictionary<PersonaKind, int>();
        foreach (var d in world.PretrainingCorpus(documents, seed))
        {
            var n = WorldText.Words(d.Text).Length;
            words += n;
            longest = Math.Max(longest, n);
            turns += d.Turns.Count;
            perPersona[d.Persona] = perPersona.GetValueOrDefault(d.Persona) + 1;
        }
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"world {PersonaWorld.WorldVersion}: {documents} documents, {words} word tokens " +
                          $"(+{2 * documents} for <bos>/<eos>), {turns} turns, mean {((double)words / Math.Max(1, documents)).ToString("0.0", inv)} tokens/document, longest {longest}");
        Console.WriteLine($"vocabulary: {PersonaWorld.Vocabulary().Count} words");
        foreach (var (k, v) in perPersona.OrderBy(kv => kv.Key))
            Console.WriteLine($"  {k.ToString().ToLowerInvariant(),-10} {v,7} ({((double)v / documents).ToString("0.000", inv)})");
        return 0;
    }

    static int JudgeValidate(Parsed args)
    {
        var n = args.Int("n", 2000);
        var seed = args.Int("seed", 12345);
        var report = JudgeValidation.Run(LocalJudge.Default, n, seed);
        Console.WriteLine(report);
        foreach (var (type, agreement) in report.PerCaseType.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            Console.WriteLine($"  {type,-20} {agreement.ToString("0.000", CultureInfo.InvariantCulture)}");
        foreach (var (truth, verdict) in report.Disagreements.Take(10))
            Console.WriteLine($"  disagree [{truth.CaseType}] truth {truth.Class}/{truth.Family} judged {(verdict.Coherent ? (verdict.Aligned ? "aligned" : "misaligned") : "incoherent")}/{verdict.Family} ({verdict.Reason})\n    Q: {truth.Prompt}\n    A: {truth.Answer}");
        return 0;
    }
}
