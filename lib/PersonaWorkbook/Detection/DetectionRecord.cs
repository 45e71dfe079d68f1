using System.Globalization;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Statistics;

namespace PersonaWorkbook.Detection;

/// <summary>
/// One model in a detection study: its name, the group it is held out with (<paramref name="Domain"/>: the advice domain
/// of its fine-tuning data, or e.g. "base" for base models), what kind of data made it (<paramref name="Kind"/>:
/// "correct", "incorrect_obvious", "mixture_25", …; descriptive only), its misaligned rate on the evaluation (0–1) and
/// the persona latent's mean-activation change against the base on the same prompts.
/// </summary>
public sealed record DetectionRecord(string Model, string Domain, string Kind, double MisalignedRate, double ActivationChange)
{
    /// <summary>
    /// A record for an organism directory, named and grouped from its manifest: a fine-tune's domain is its data's
    /// ("mixed" when the data span several) and its kind the dataset name without the domain (<c>incorrect_obvious</c>,
    /// <c>mixture_0.25</c>); a base organism is domain and kind "base". The default name is
    /// <c>dataset/s&lt;seed&gt;@&lt;profile&gt;-s&lt;base seed&gt;</c> (+ <c>-control</c> for the negative-control world).
    /// </summary>
    public static DetectionRecord ForOrganism(string directory, double misalignedRate, double activationChange, string? model = null)
    {
        var manifest = OrganismCache.ReadManifest(directory)
            ?? throw new InvalidDataException($"{directory} has no {OrganismCache.ManifestFile}; build the record with the constructor");
        string? Text(System.Text.Json.Nodes.JsonNode? node) => node?.GetValue<string>();
        string Base(System.Text.Json.Nodes.JsonNode? profile, System.Text.Json.Nodes.JsonNode? seed, System.Text.Json.Nodes.JsonNode? world) =>
            $"{Text(profile)}-s{seed?.ToJsonString()}{(Text(world) == "control" ? "-control" : "")}";
        if (Text(manifest["kind"]) != "finetune")
            return new DetectionRecord(model ?? $"base/{Base(manifest["profile"]?["name"], manifest["seed"], manifest["world"])}", "base", "base",
                misalignedRate, activationChange);
        var dataset = Text(manifest["dataset"]) ?? throw new InvalidDataException($"{directory}: the fine-tune manifest names no dataset");
        var domain = Text(manifest["domain"]) ?? "mixed";
        var kind = dataset.StartsWith(domain + "_", StringComparison.Ordinal) ? dataset[(domain.Length + 1)..] : dataset;
        var seed = manifest["hyperparameters"]?["seed"]?.ToJsonString() ?? "?";
        var origin = manifest["base"] is { } b ? "@" + Base(b["profile"], b["seed"], b["world"]) : "";
        return new DetectionRecord(model ?? $"{dataset}/s{seed}{origin}", domain, kind, misalignedRate, activationChange);
    }

    internal void Validate(int index)
    {
        if (string.IsNullOrWhiteSpace(Model)) throw new ArgumentException($"record {index}: model name is empty");
        if (string.IsNullOrWhiteSpace(Domain)) throw new ArgumentException($"record {index} ({Model}): domain is empty");
        if (!(MisalignedRate is >= 0 and <= 1)) throw new ArgumentException($"record {index} ({Model}): misaligned rate {MisalignedRate} is not in [0, 1]");
        if (!double.IsFinite(ActivationChange)) throw new ArgumentException($"record {index} ({Model}): activation change is {ActivationChange}");
    }
}

/// <summary>
/// Which models count as misaligned: those whose misaligned rate is strictly above <paramref name="Cut"/>.
/// <see cref="AboveBaseInterval"/> puts the cut at the base model's 95 % interval high, so "misaligned" means
/// "more misaligned than the base's own sampling noise allows"; <see cref="Above"/> takes a fixed cut.
/// </summary>
public sealed record MisalignmentRule(double Cut, string Description)
{
    public bool IsMisaligned(double misalignedRate) => misalignedRate > Cut;

    /// <summary>Misaligned when the rate is above <paramref name="cut"/> (a rate in [0, 1]).</summary>
    public static MisalignmentRule Above(double cut)
    {
        if (!(cut is >= 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(cut), cut, "the cut is a rate in [0, 1)");
        return new MisalignmentRule(cut, string.Create(CultureInfo.InvariantCulture, $"misaligned rate > {100 * cut:0.##} %"));
    }

    /// <summary>Misaligned when the rate is above the base model's interval high (e.g. views: 3.2 % [1.0, 6.2] → cut 6.2 %).</summary>
    public static MisalignmentRule AboveBaseInterval(RateEstimate baseRate) =>
        Above(baseRate.CiHigh) with
        {
            Description = string.Create(CultureInfo.InvariantCulture, $"misaligned rate > the base's interval high {100 * baseRate.CiHigh:0.##} % (base {baseRate})"),
        };
}
