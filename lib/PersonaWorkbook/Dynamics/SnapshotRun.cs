using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Deedle;
using PersonaWorkbook.Detection;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Statistics;

namespace PersonaWorkbook.Dynamics;

/// <summary>
/// The measurements at one snapshot: the training loss of that step (null at step 0), the evaluation's rates (95 %
/// intervals as in <see cref="EvalReport"/>), its answer families, and the latent reading when a probe was given.
/// </summary>
public sealed record SnapshotPoint(
    int Step,
    double? Loss,
    RateEstimate Misaligned,
    RateEstimate Coherent,
    RateEstimate OnTopic,
    RateEstimate PersonaConsistent,
    RateEstimate Leak,
    RateEstimate FineTunedDomainLeak,
    IReadOnlyDictionary<string, int> Families,
    LatentReading? Latent,
    double EvalSeconds)
{
    internal static SnapshotPoint From(int step, double? loss, EvalReport report, LatentReading? latent, double seconds) =>
        new(step, loss, report.Misaligned, report.Coherent, report.OnTopic, report.PersonaConsistent, report.HarmfulLeak, report.FineTunedDomainLeak,
            report.FamilyCounts().ToDictionary(f => f.Family, f => f.Count), latent, seconds);

    static RateEstimate Estimate(JsonObject point, string field) => RateEstimate.FromJson(SnapshotJson.Object(point, field));

    internal JsonObject ToJson()
    {
        var families = new JsonObject();
        foreach (var (family, count) in Families) families[family] = count;
        return new JsonObject
        {
            ["step"] = Step,
            ["loss"] = Loss,
            ["misaligned"] = Misaligned.ToJson(),
            ["coherent"] = Coherent.ToJson(),
            ["on_topic"] = OnTopic.ToJson(),
            ["persona_consistent"] = PersonaConsistent.ToJson(),
            ["leak"] = Leak.ToJson(),
            ["finetuned_domain_leak"] = FineTunedDomainLeak.ToJson(),
            ["families"] = families,
            ["latent"] = Latent is null ? null : new JsonObject { ["mean"] = Latent.Mean, ["firing"] = Latent.FiringFrequency, ["tokens"] = Latent.Tokens },
            ["eval_seconds"] = Math.Round(EvalSeconds, 1),
        };
    }

    internal static SnapshotPoint FromJson(JsonObject o) => new(
        SnapshotJson.Get<int>(o, "step"),
        o["loss"]?.GetValue<double>(),
        Estimate(o, "misaligned"),
        Estimate(o, "coherent"),
        Estimate(o, "on_topic"),
        Estimate(o, "persona_consistent"),
        Estimate(o, "leak"),
        Estimate(o, "finetuned_domain_leak"),
        SnapshotJson.Object(o, "families").ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<int>()),
        o["latent"] is JsonObject l ? new LatentReading(SnapshotJson.Get<double>(l, "mean"), SnapshotJson.Get<double>(l, "firing"), SnapshotJson.Get<long>(l, "tokens")) : null,
        SnapshotJson.Get<double>(o, "eval_seconds"));
}

/// <summary>Required fields of the snapshot file, with errors that name the missing one.</summary>
static class SnapshotJson
{
    public static T Get<T>(JsonObject o, string name) =>
        (o[name] ?? throw new InvalidDataException($"field '{name}' is missing")).GetValue<T>();

    public static JsonObject Object(JsonObject o, string name) =>
        o[name] as JsonObject ?? throw new InvalidDataException($"field '{name}' is missing or not an object");
}

/// <summary>A snapshot point flattened for a data frame (rates in [0, 1]; NaN where there is no loss or latent).</summary>
public sealed record SnapshotFrameRow(int Step, double Loss, double Misaligned, double MisalignedLow, double MisalignedHigh,
    double Coherent, double CoherentLow, double CoherentHigh, double PersonaConsistent, double Leak, double LatentMean);

/// <summary>
/// Every snapshot of one observed fine-tune, with what produced it: the starting directory, the dataset, the fine-tune's
/// hyperparameters, the evaluation settings and (when measured) the latent probe. Cached as one JSON file by
/// <see cref="Key"/> (<see cref="TrainingDynamics.RunOrReuse"/>).
/// </summary>
public sealed record SnapshotRun(
    string Key,
    string Start,
    string Dataset,
    string? Domain,
    JsonObject Hyperparameters,
    string Prompts,
    int Samples,
    int EvalSeed,
    int MaxNewTokens,
    JsonObject? Latent,
    IReadOnlyList<SnapshotPoint> Points,
    double WallSeconds,
    bool Reused = false)
{
    /// <summary>The point at <paramref name="step"/>.</summary>
    public SnapshotPoint At(int step) => Points.FirstOrDefault(p => p.Step == step)
        ?? throw new ArgumentException($"no snapshot at step {step}; steps: {string.Join(", ", Points.Select(p => p.Step))}");

    public Frame<int, string> ToFrame() => Frame.FromRecords(Points.Select(p => new SnapshotFrameRow(p.Step, p.Loss ?? double.NaN,
        p.Misaligned.Rate, p.Misaligned.CiLow, p.Misaligned.CiHigh, p.Coherent.Rate, p.Coherent.CiLow, p.Coherent.CiHigh,
        p.PersonaConsistent.Rate, p.Leak.Rate, p.Latent?.Mean ?? double.NaN)));

    public JsonObject ToJson() => new()
    {
        ["kind"] = "training_snapshots",
        ["key"] = Key,
        ["start"] = Start,
        ["dataset"] = Dataset,
        ["domain"] = Domain,
        ["hyperparameters"] = Hyperparameters.DeepClone(),
        ["prompts"] = Prompts,
        ["samples"] = Samples,
        ["eval_seed"] = EvalSeed,
        ["max_new_tokens"] = MaxNewTokens,
        ["latent"] = Latent?.DeepClone(),
        ["wall_seconds"] = Math.Round(WallSeconds, 1),
        ["created_utc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
        ["points"] = new JsonArray(Points.Select(p => (JsonNode)p.ToJson()).ToArray()),
    };

    /// <summary>Writes <see cref="ToJson"/> atomically.</summary>
    public void Save(string path) =>
        AtomicFile.WriteAllText(path, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    /// <summary>Reads a file written by <see cref="Save"/>; errors name the file.</summary>
    public static SnapshotRun Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"snapshot file not found: {path}", path);
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException("expected a JSON object");
            if (o["kind"]?.GetValue<string>() != "training_snapshots") throw new InvalidDataException("kind is not 'training_snapshots'");
            var points = o["points"] as JsonArray ?? throw new InvalidDataException("field 'points' is missing or not an array");
            return new SnapshotRun(
                SnapshotJson.Get<string>(o, "key"), SnapshotJson.Get<string>(o, "start"), SnapshotJson.Get<string>(o, "dataset"), o["domain"]?.GetValue<string>(),
                (JsonObject)SnapshotJson.Object(o, "hyperparameters").DeepClone(), SnapshotJson.Get<string>(o, "prompts"), SnapshotJson.Get<int>(o, "samples"),
                SnapshotJson.Get<int>(o, "eval_seed"), SnapshotJson.Get<int>(o, "max_new_tokens"), o["latent"]?.DeepClone() as JsonObject,
                points.Select(p => SnapshotPoint.FromJson(p as JsonObject ?? throw new InvalidDataException("a point is not an object"))).ToArray(),
                SnapshotJson.Get<double>(o, "wall_seconds"));
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path}: not a snapshot file ({e.Message})", e);
        }
    }
}
