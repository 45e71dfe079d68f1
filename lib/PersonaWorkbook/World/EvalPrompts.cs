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
