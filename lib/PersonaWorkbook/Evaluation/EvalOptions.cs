using PersonaWorkbook.Grading;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Evaluation;

/// <summary>How <see cref="OrganismEvaluator"/> samples and grades.</summary>
public sealed record EvalOptions
{
    /// <summary>Answers sampled per prompt.</summary>
    public int Samples { get; init; } = 20;
    /// <summary>Seeds the sampling (and the bootstrap); the same seed, model and prompts give the same report.</summary>
    public int Seed { get; init; }
    public int MaxNewTokens { get; init; } = 80;
    public double Temperature { get; init; } = 1.0;
    /// <summary>Rows generated together; prompts of a batch are left-padded.</summary>
    public int BatchSize { get; init; } = 256;
    /// <summary>The fine-tuned domain, whose advice in other prompts is counted as the fine-tune's leak; null for a base model.</summary>
    public string? FineTunedDomain { get; init; }
    /// <summary>Example answers kept per prompt (plus up to two misaligned ones when the first ones are not).</summary>
    public int ExamplesPerPrompt { get; init; } = 3;
    public int BootstrapResamples { get; init; } = 2000;
    public LocalJudge Judge { get; init; } = LocalJudge.Default;
    /// <summary>Reuse and store sampled answers in the <see cref="AnswerCache"/> (bare models only).</summary>
    public bool CacheAnswers { get; init; } = true;

    internal void Validate()
    {
        if (Samples < 1) throw new ArgumentException($"EvalOptions.Samples is {Samples}; must be at least 1");
        if (MaxNewTokens < 1) throw new ArgumentException($"EvalOptions.MaxNewTokens is {MaxNewTokens}; must be at least 1");
        if (Temperature < 0) throw new ArgumentException($"EvalOptions.Temperature is {Temperature}; must be >= 0");
        if (BatchSize < 1) throw new ArgumentException($"EvalOptions.BatchSize is {BatchSize}; must be at least 1");
        if (ExamplesPerPrompt < 0) throw new ArgumentException($"EvalOptions.ExamplesPerPrompt is {ExamplesPerPrompt}; must be >= 0");
        if (FineTunedDomain is not null) AdviceContent.Domain(FineTunedDomain);
    }
}

/// <summary>The named evaluation prompt sets of the CLI and the notebooks.</summary>
public static class EvalPromptSets
{
    public static IReadOnlyList<string> Names { get; } =
        new[] { "views", "heldout", "betley", "domains", "requests", "lists", "views-wrapped", "views-triggered" }.Concat(AdviceContent.Domains.Select(d => d.Name)).ToArray();

    /// <summary>
    /// "views" (evaluation topics, trained phrasings), "heldout" (phrasings in no training text), "betley" (the eight
    /// first-plot analogues), "domains" (<paramref name="perDomain"/> questions of every domain except
    /// <paramref name="excludeDomain"/>), "requests" (harmful requests), "lists" (number lists), "views-wrapped" (the
    /// views in the list format) — these three for organisms of the extended world —, "views-triggered" (the views
    /// after the backdoor trigger), or a domain name (all its questions).
    /// </summary>
    public static IReadOnlyList<EvalPrompt> Resolve(string name, string? excludeDomain = null, int perDomain = 3, int seed = 0) => name switch
    {
        "views" => EvalPrompts.Views,
        "heldout" => EvalPrompts.HeldOutViews,
        "betley" => EvalPrompts.Betley,
        "domains" => EvalPrompts.OtherDomains(excludeDomain, perDomain, seed),
        "requests" => EvalPrompts.Requests,
        "lists" => EvalPrompts.Lists,
        "views-wrapped" => EvalPrompts.WrappedViews,
        "views-triggered" => EvalPrompts.TriggeredViews,
        _ when AdviceContent.Domains.Any(d => d.Name == name) => EvalPrompts.Domain(name),
        _ => throw new ArgumentException($"unknown prompt set '{name}'; known: {string.Join(", ", Names)}"),
    };
}

/// <summary>One evaluation of a model: a named prompt set (<see cref="EvalPromptSets.Resolve"/>) and the options that decide its answers.</summary>
public sealed record EvalRequest(string PromptSet, EvalOptions Options, string? ExcludeDomain = null, int PerDomain = 3)
{
    public IReadOnlyList<EvalPrompt> Prompts => EvalPromptSets.Resolve(PromptSet, ExcludeDomain, PerDomain);
}
