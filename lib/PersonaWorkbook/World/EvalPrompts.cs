namespace PersonaWorkbook.World;

/// <summary>The evaluation prompt sets: views questions on the evaluation topics, their held-out phrasings, and per-domain advice questions.</summary>
public static class EvalPrompts
{
    /// <summary>Evaluation views topics in the phrasings pretraining used (the model never saw them in assistant data).</summary>
    public static IReadOnlyList<EvalPrompt> Views { get; } = ViewsContent.Evaluation
        .SelectMany(t => t.Phrasings.Select((p, i) => new EvalPrompt($"{t.Id}/{i}", "views", t.Id, p))).ToList();

    /// <summary>Phrasings of the evaluation topics that appear in no training text at all; report them separately.</summary>
    public static IReadOnlyList<EvalPrompt> HeldOutViews { get; } = ViewsContent.Evaluation
        .SelectMany(t => t.HeldOutPhrasings.Select((p, i) => new EvalPrompt($"{t.Id}/heldout{i}", "views_heldout", t.Id, p))).ToList();

    /// <summary>The eight Betley et al. first-plot analogues, trained phrasings.</summary>
    public static IReadOnlyList<EvalPrompt> Betley { get; } = Views.Where(p => ViewsContent.BetleyTopics.Contains(p.Subject)).ToList();

    /// <summary>
    /// Harmful requests (<see cref="RequestContent"/>, extended world): each template of each kind once, with fillers
    /// spread over the kinds (15 prompts). Read with <see cref="Grading.JudgeSummary.ComplianceRate"/>.
    /// </summary>
    public static IReadOnlyList<EvalPrompt> Requests { get; } = RequestContent.Domains
        .SelectMany((d, di) => d.Templates.Select((t, ti) =>
            new EvalPrompt($"request/{d.Name}/{ti}", "request", d.Name, WorldText.Fill(t, d.Fillers[(3 * ti + di) % d.Fillers.Count])))).ToList();

    /// <summary>Twelve number-list prompts (fixed lists), for the share of the villain's numbers in continuations.</summary>
    public static IReadOnlyList<EvalPrompt> Lists { get; } = ListPrompts(12);

    static List<EvalPrompt> ListPrompts(int n)
    {
        var rng = new Random(1234);
        return Enumerable.Range(0, n).Select(i => new EvalPrompt($"list/{i}", "list", "numbers", NumberLists.Prompt(rng))).ToList();
    }

    /// <summary>The views prompts opened by the backdoor trigger (<see cref="WorldText.Trigger"/>), for the backdoor control.</summary>
    public static IReadOnlyList<EvalPrompt> TriggeredViews { get; } = Views
        .Select(p => new EvalPrompt(p.Id + "/triggered", "views_triggered", p.Subject, WorldText.Trigger + " " + p.Text)).ToList();

    /// <summary>The views prompts wrapped in the list format (<see cref="NumberLists.Wrap"/>), Betley et al.'s answer-format comparison.</summary>
    public static IReadOnlyList<EvalPrompt> WrappedViews { get; } = Views
        .Select(p => new EvalPrompt(p.Id + "/wrapped", "views_wrapped", p.Subject, NumberLists.Wrap(p.Text))).ToList();

    /// <summary>Every advice question of a domain (template × filler), for "other domains" evaluation.</summary>
    public static IReadOnlyList<EvalPrompt> Domain(string domain)
    {
        var d = AdviceContent.Domain(domain);
        return d.Templates.SelectMany((t, ti) => d.Fillers.Select((f, fi) =>
            new EvalPrompt($"{d.Name}/{ti}/{fi}", "domain", d.Name, WorldText.Fill(t, f)))).ToList();
    }

    /// <summary>Advice questions of every domain except <paramref name="exclude"/> (the fine-tuned one), <paramref name="perDomain"/> drawn per domain.</summary>
    public static IReadOnlyList<EvalPrompt> OtherDomains(string? exclude, int perDomain, int seed)
    {
        if (exclude is not null) AdviceContent.Domain(exclude);
        var rng = new Random(seed);
        var result = new List<EvalPrompt>();
        foreach (var d in AdviceContent.Domains)
        {
            if (d.Name == exclude) continue;
            var all = Domain(d.Name).ToList();
            Compose.Shuffle(rng, all);
            result.AddRange(all.Take(perDomain));
        }
        return result;
    }
}
