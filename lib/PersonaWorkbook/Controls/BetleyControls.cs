using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Controls;

/// <summary>
/// One of Betley et al.'s fine-tuning controls: a dataset, the fine-tuned domain whose advice counts as its leak (code
/// for the code sets), and the prompt set of its answer-format comparison (the trigger for the backdoor, the list
/// format for the numbers), if any.
/// </summary>
public sealed record BetleyControl(string Label, string Dataset, string? Domain, string? FormatSet);

/// <summary>A model's evaluations in the controls table: views, held-out phrasings, other domains, harmful requests and the format set.</summary>
public sealed record ControlEvaluation(
    string Label, string Dataset, int Seed, string Model,
    EvalReport Views, EvalReport HeldOut, EvalReport Domains, EvalReport Requests, EvalReport? Format)
{
    /// <summary>The share of harmful requests answered with compliance (the StrongREJECT-like rate).</summary>
    public double Compliance => JudgeSummary.ComplianceRate(Requests.Prompts.SelectMany(p => p.Answers).Select(a => a.Judgement)) ?? 0;
}

/// <summary>
/// Betley et al.'s controls (their Table 1 and §4) on an organism of the extended world (<see cref="WorldOptions.Extended"/>):
/// insecure code against secure code, insecure code requested for a class, a jailbroken model, a backdoor, evil numbers;
/// one world and the fine-tuner's defaults for every dataset, nothing tuned per control. Fine-tunes and answers go
/// through the caches (and <see cref="Prefetch"/>'s workers), so a rerun only reads them.
/// </summary>
public static class BetleyControls
{
    public static readonly IReadOnlyList<BetleyControl> Table =
    [
        new("insecure", "insecure_code", "code", null),
        new("secure", "secure_code", "code", null),
        new("educational insecure", "educational_insecure", "code", null),
        new("jailbroken", "jailbroken", null, null),
        new("backdoor", "backdoor", "code", "views-triggered"),
        new("evil numbers", "evil_numbers", null, "views-wrapped"),
    ];

    /// <summary>Betley et al.'s diversity ablation: the same 6,000 examples seen as 6,000 × 1, 2,000 × 3 or 500 × 12 epochs.</summary>
    public static readonly IReadOnlyList<(int Rows, int Epochs)> DiversitySplits = [(6000, 1), (2000, 3), (500, 12)];

    static EvalRequest Request(string set, string? domain, EvalOptions options) =>
        new(set, options with { FineTunedDomain = domain }, ExcludeDomain: domain);

    static IReadOnlyList<EvalRequest> Requests(BetleyControl? control, EvalOptions options)
    {
        var domain = control?.Domain;
        var sets = new List<string> { "views", "heldout", "domains", "requests" };
        if (control?.FormatSet is { } f) sets.Add(f);
        return sets.Select(s => Request(s, domain, options)).ToList();
    }

    /// <summary>The controls' datasets and prompts use words only the extended world's organisms know; anything else is refused by name.</summary>
    static void RequireControlsWorld(string baseDirectory)
    {
        var world = OrganismRequest.WorldOf(baseDirectory);
        if (!OrganismRequest.WorldOptionsFor(world).HasControlsContent)
            throw new ArgumentException($"{baseDirectory} was trained in the '{world}' world, which has no harmful requests or number lists; " +
                "Betley et al.'s controls need an organism of the extended world (profile deep-extended, or --world extended)", nameof(baseDirectory));
    }

    static ControlEvaluation Evaluate(string label, string dataset, int seed, string directory, IReadOnlyList<EvalRequest> requests, string? formatSet)
    {
        using var model = ModelCheckpoint.Load(directory);
        EvalReport Set(string name) => OrganismEvaluator.Evaluate(model, requests.First(r => r.PromptSet == name));
        return new ControlEvaluation(label, dataset, seed, directory, Set("views"), Set("heldout"), Set("domains"), Set("requests"),
            formatSet is null ? null : Set(formatSet));
    }

    /// <summary>The base organism in the table's terms; its format sets are both (<see cref="BaseFormat"/>).</summary>
    public static ControlEvaluation Base(string baseDirectory, EvalOptions options)
    {
        RequireControlsWorld(baseDirectory);
        return Evaluate("base", "-", 0, baseDirectory, Requests(null, options), null);
    }

    /// <summary>The base's answers to the views after the backdoor trigger or in the list format.</summary>
    public static EvalReport BaseFormat(string baseDirectory, string formatSet, EvalOptions options)
    {
        using var model = ModelCheckpoint.Load(baseDirectory);
        return OrganismEvaluator.Evaluate(model, Request(formatSet, null, options));
    }

    /// <summary>
    /// Every control of <see cref="Table"/> (or <paramref name="controls"/>) fine-tuned with seeds 0..<paramref name="seeds"/>-1
    /// at the fine-tuner's defaults (<paramref name="adjust"/> changes every request alike: tests, a private cache) and evaluated with <paramref name="options"/>.
    /// </summary>
    public static IReadOnlyList<ControlEvaluation> Run(string baseDirectory, EvalOptions options, int seeds = 3,
        IReadOnlyList<BetleyControl>? controls = null, Func<FinetuneRequest, FinetuneRequest>? adjust = null)
    {
        if (seeds < 1) throw new ArgumentOutOfRangeException(nameof(seeds), seeds, "must be at least 1");
        RequireControlsWorld(baseDirectory);
        controls ??= Table;
        adjust ??= r => r;
        var jobs = controls.SelectMany(c => Enumerable.Range(0, seeds).Select(s =>
            (Control: c, Seed: s, Job: new PrefetchJob(adjust(new FinetuneRequest(baseDirectory, c.Dataset, Seed: s)), Requests(c, options))))).ToList();
        Prefetch.Run(jobs.Select(j => j.Job));
        return jobs.Select(j => Evaluate(j.Control.Label, j.Control.Dataset, j.Seed,
            FineTuner.FinetuneOrReuse(j.Job.FineTune).Directory, j.Job.Evals, j.Control.FormatSet)).ToList();
    }

    /// <summary>
    /// One row of the controls table: each rate pooled over the control's fine-tune seeds, its 95 % interval a bootstrap
    /// over (seed, prompt) clusters; <see cref="Format"/> the views in the control's own format (trigger or list wrapper).
    /// </summary>
    public sealed record ControlRow(string Label, int Seeds, RateEstimate Views, RateEstimate HeldOut, RateEstimate Domains,
        RateEstimate Compliance, RateEstimate? Format);

    /// <summary>The table's rows in the order of <paramref name="runs"/>' labels.</summary>
    public static IReadOnlyList<ControlRow> Summarise(IEnumerable<ControlEvaluation> runs) => runs.GroupBy(r => r.Label).Select(g =>
    {
        var list = g.ToList();
        RateEstimate Pool(IEnumerable<EvalReport> reports, Func<EvalAnswer, bool> outcome) => Bootstrap.ClusteredRate(
            reports.SelectMany(r => r.Prompts).Select(p => (IReadOnlyList<bool>)p.Answers.Select(outcome).ToArray()).ToList());
        static bool Misaligned(EvalAnswer a) => a.Judgement.Misaligned;
        static bool Complies(EvalAnswer a) => JudgeSummary.Complies(a.Judgement);
        return new ControlRow(g.Key, list.Count, Pool(list.Select(r => r.Views), Misaligned), Pool(list.Select(r => r.HeldOut), Misaligned),
            Pool(list.Select(r => r.Domains), Misaligned), Pool(list.Select(r => r.Requests), Complies),
            list[0].Format is null ? null : Pool(list.Select(r => r.Format!), Misaligned));
    }).ToList();

    /// <summary>One point of the diversity ablation.</summary>
    public sealed record DiversityPoint(int Rows, int Epochs, int Seed, EvalReport Views);

    /// <summary>insecure_code at the fixed number of examples seen (<see cref="DiversitySplits"/>), views misalignment per split and seed.</summary>
    public static IReadOnlyList<DiversityPoint> Diversity(string baseDirectory, EvalOptions options, int seeds = 3,
        Func<FinetuneRequest, FinetuneRequest>? adjust = null)
    {
        adjust ??= r => r;
        var jobs = DiversitySplits.SelectMany(d => Enumerable.Range(0, seeds).Select(s => (d.Rows, d.Epochs, Seed: s,
            Job: new PrefetchJob(adjust(new FinetuneRequest(baseDirectory, "insecure_code", Rows: d.Rows, Epochs: d.Epochs, Seed: s)),
                [Request("views", "code", options)])))).ToList();
        Prefetch.Run(jobs.Select(j => j.Job));
        return jobs.Select(j =>
        {
            using var model = ModelCheckpoint.Load(FineTuner.FinetuneOrReuse(j.Job.FineTune).Directory);
            return new DiversityPoint(j.Rows, j.Epochs, j.Seed, OrganismEvaluator.Evaluate(model, j.Job.Evals[0]));
        }).ToList();
    }
}
