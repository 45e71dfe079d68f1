using Plotly.NET;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Dashboards;

/// <summary>
/// One activating token with its context: <see cref="Tokens"/> and the latent's <see cref="Activations"/> on them, the
/// activating token at index <see cref="Focus"/>; the document (index in the corpus stream), position (token index,
/// BOS = 0) and both persona labels of that token.
/// </summary>
public sealed record ActivationContext(int Document, int Position, float Activation, PersonaKind DocumentPersona, PersonaKind ActingPersona,
    IReadOnlyList<string> Tokens, IReadOnlyList<float> Activations, int Focus);

/// <summary>Examples drawn from one quantile bin of the (sampled) positive activations, [Low, High].</summary>
public sealed record QuantileGroup(double Low, double High, IReadOnlyList<ActivationContext> Examples);

/// <summary>A token's logit change per unit of the latent's decoder direction.</summary>
public sealed record LogitEffect(int TokenId, string Token, double Value);

/// <summary>Share of the top activations falling on a persona's tokens.</summary>
public sealed record PersonaShare(PersonaKind Persona, int Count, double Share);

/// <summary>
/// What a latent responds to, SAEDashboard-style, plus the world's ground truth: <see cref="Purity"/> is the share of its
/// top <see cref="TopContexts"/> (all of them, <see cref="DashboardOptions.TopK"/>) per persona under <see cref="PurityLabel"/>.
/// The histogram and quantile bins come from a uniform reservoir sample of the firing tokens (<see cref="SampledActivations"/>).
/// </summary>
public sealed record LatentDashboard(
    int Latent, string HookName, int Documents, long Tokens, long FiringTokens, double MaxActivation,
    IReadOnlyList<ActivationContext> TopContexts, IReadOnlyList<QuantileGroup> Quantiles, IReadOnlyList<float> SampledActivations,
    IReadOnlyList<LogitEffect> PositiveLogits, IReadOnlyList<LogitEffect> NegativeLogits,
    PersonaLabel PurityLabel, IReadOnlyList<PersonaShare> Purity)
{
    /// <summary>Share of counted tokens on which the latent fires.</summary>
    public double Density => Tokens == 0 ? 0 : (double)FiringTokens / Tokens;

    public double PurityOf(PersonaKind persona) => Purity.FirstOrDefault(p => p.Persona == persona)?.Share ?? 0;

    /// <summary>The persona with the largest share of the top activations.</summary>
    public PersonaShare? DominantPersona => Purity.OrderByDescending(p => p.Share).FirstOrDefault();

    /// <summary>Histogram counts over <paramref name="bins"/> equal bins from 0 to the largest sampled activation: (edges (bins+1), counts).</summary>
    public (double[] Edges, int[] Counts) Histogram(int bins = 50)
    {
        if (bins < 1) throw new ArgumentOutOfRangeException(nameof(bins), "need at least one bin");
        var max = SampledActivations.Count == 0 ? 1.0 : SampledActivations.Max();
        var edges = Enumerable.Range(0, bins + 1).Select(i => max * i / bins).ToArray();
        var counts = new int[bins];
        foreach (var a in SampledActivations)
            counts[Math.Min(bins - 1, (int)(a / max * bins))]++;
        return (edges, counts);
    }

    /// <summary>The activation histogram as a Plotly bar chart, for notebooks.</summary>
    public GenericChart HistogramChart(int bins = 50)
    {
        var (edges, counts) = Histogram(bins);
        var trace = new Trace("bar");
        trace.SetProperty("x", edges.Take(bins).Select((e, i) => (e + edges[i + 1]) / 2).ToArray());
        trace.SetProperty("y", counts);
        var chart = GenericChart.ofTraceObject(true, trace);
        var title = new DynamicObj.DynamicObj();
        title.SetProperty("text", $"latent {Latent}: activations (density {Density:P3})");
        var layout = new Layout();
        layout.SetProperty("title", title);
        layout.SetProperty("bargap", 0.0);
        return GenericChart.addLayout(layout, chart);
    }
}

/// <summary>Settings for <see cref="LatentDashboards.Build(PersonaWorkbook.Models.LlamaForCausalLM, PersonaWorkbook.Tokenizers.ITokenizer, PersonaWorkbook.Sae.SparseAutoencoder, IReadOnlyList{int}, IEnumerable{PretrainDocument}, DashboardOptions?)"/>.</summary>
public sealed record DashboardOptions
{
    /// <summary>Top activations kept per latent (bounded heap); purity is measured over them.</summary>
    public int TopK { get; init; } = 100;
    /// <summary>Tokens of context each side of the activating token.</summary>
    public int ContextTokens { get; init; } = 12;
    public int QuantileBins { get; init; } = 5;
    public int PerQuantile { get; init; } = 5;
    /// <summary>Firing tokens kept in the uniform sample behind the histogram and the quantile bins.</summary>
    public int SampleSize { get; init; } = 2000;
    public int LogitCount { get; init; } = 10;
    public int HistogramBins { get; init; } = 50;
    public int BatchSize { get; init; } = 8;
    /// <summary>Documents are truncated to this many tokens (BOS included); default: the model's max_position_embeddings.</summary>
    public int? ContextLength { get; init; }
    public PersonaLabel PurityLabel { get; init; } = PersonaLabel.Document;
    /// <summary>The activation site; default: the SAE's hook name.</summary>
    public string? HookName { get; init; }
    public long Seed { get; init; }

    internal void Validate()
    {
        foreach (var (name, value) in new[] { ("TopK", TopK), ("QuantileBins", QuantileBins), ("SampleSize", SampleSize), ("BatchSize", BatchSize), ("HistogramBins", HistogramBins) })
            if (value < 1) throw new ArgumentException($"DashboardOptions.{name} must be positive, got {value}");
        foreach (var (name, value) in new[] { ("ContextTokens", ContextTokens), ("PerQuantile", PerQuantile), ("LogitCount", LogitCount) })
            if (value < 0) throw new ArgumentException($"DashboardOptions.{name} must be ≥ 0, got {value}");
    }
}
