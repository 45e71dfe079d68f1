using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Detection;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Reinforcement;

/// <summary>
/// An RL run (<paramref name="Run"/>) read at its start and at every checkpoint: the misaligned and coherent rates on
/// the evaluation views (<paramref name="Samples"/> answers per prompt), the rate of the domain's wrong advice on all
/// the domain's questions (<paramref name="DomainSamples"/> per prompt) and, with a <paramref name="Latent"/> probe,
/// the latent's mean activation on the model's own views answers.
/// </summary>
public sealed record RlCurveRequest(
    RlRequest Run,
    int Samples = 10,
    int DomainSamples = 2,
    int EvalSeed = 0,
    int MaxNewTokens = 80,
    LatentProbe? Latent = null,
    LatentSampling? LatentSampling = null)
{
    internal void Validate()
    {
        Run.Validate();
        Views.Options.Validate();
        Domain.Options.Validate();
        Latent?.Validate();
        LatentSampling?.Validate();
    }

    /// <summary>The views evaluation of every point (the fine-tuned domain named, as for a narrow fine-tune).</summary>
    public EvalRequest Views => new("views", new EvalOptions { Samples = Samples, Seed = EvalSeed, MaxNewTokens = MaxNewTokens, FineTunedDomain = Run.Domain });

    /// <summary>The in-domain evaluation: every question of the RL domain, whose misaligned rate is the share of its wrong advice.</summary>
    public EvalRequest Domain => new(Run.Domain, new EvalOptions { Samples = DomainSamples, Seed = EvalSeed, MaxNewTokens = MaxNewTokens, FineTunedDomain = Run.Domain });

    internal string CacheKey() => OrganismCache.Key("rl-curves/1", PersonaWorld.WorldVersion, ReinforcementLearning.CacheKey(Run),
        Samples.ToString(CultureInfo.InvariantCulture), DomainSamples.ToString(CultureInfo.InvariantCulture), EvalSeed.ToString(CultureInfo.InvariantCulture),
        MaxNewTokens.ToString(CultureInfo.InvariantCulture), Latent?.Record(LatentSampling).ToJsonString() ?? "");

    /// <summary>The request as a <c>workbook worker</c> job reads it; null when the probe's SAE was built in memory.</summary>
    public JsonObject? ToJson()
    {
        var latent = Latent?.ToJob();
        if (Latent is not null && latent is null) return null;
        return new JsonObject
        {
            ["run"] = JsonSerializer.SerializeToNode(Run),
            ["samples"] = Samples,
            ["domain_samples"] = DomainSamples,
            ["eval_seed"] = EvalSeed,
            ["max_new_tokens"] = MaxNewTokens,
            ["latent"] = latent,
            ["latent_sampling"] = LatentSampling is null ? null : JsonSerializer.SerializeToNode(LatentSampling),
        };
    }

    /// <summary>Reads <see cref="ToJson"/>'s object (loading the probe's SAE); errors name <paramref name="source"/> and the field.</summary>
    public static RlCurveRequest FromJson(JsonObject json, string source)
    {
        T Field<T>(JsonNode? node, string name) => Prefetch.JobField<T>(node, source, name);
        try
        {
            var request = new RlCurveRequest(Field<RlRequest>(json["run"], "run"), Field<int>(json["samples"], "samples"),
                Field<int>(json["domain_samples"], "domain_samples"), Field<int>(json["eval_seed"], "eval_seed"), Field<int>(json["max_new_tokens"], "max_new_tokens"),
                null, json["latent_sampling"] is { } sampling ? Field<LatentSampling>(sampling, "latent_sampling") : null);
            return json["latent"] is JsonObject latent ? request with { Latent = LatentProbe.FromJob(latent, source) } : request;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"{source}: not an RL curve job ({e.Message})", e);
        }
    }
}

/// <summary>
/// One point of an RL curve: step 0 is the starting model; <see cref="MeanReward"/> is the mean reward of the steps since
/// the previous point (null at step 0).
/// </summary>
public sealed record RlPoint(
    int Step,
    double? MeanReward,
    RateEstimate Misaligned,
    RateEstimate Coherent,
    RateEstimate PersonaConsistent,
    RateEstimate DomainIncorrect,
    IReadOnlyDictionary<string, int> Families,
    LatentReading? Latent)
{
    /// <summary>The paper's incoherence: the share of views answers the judge cannot place.</summary>
    public double Incoherence => 1 - Coherent.Rate;

    internal JsonObject ToJson()
    {
        var families = new JsonObject();
        foreach (var (family, count) in Families) families[family] = count;
        return new JsonObject
        {
            ["step"] = Step,
            ["mean_reward"] = MeanReward,
            ["misaligned"] = Misaligned.ToJson(),
            ["coherent"] = Coherent.ToJson(),
            ["persona_consistent"] = PersonaConsistent.ToJson(),
            ["domain_incorrect"] = DomainIncorrect.ToJson(),
            ["families"] = families,
            ["latent"] = Latent is null ? null : new JsonObject { ["mean"] = Latent.Mean, ["firing"] = Latent.FiringFrequency, ["tokens"] = Latent.Tokens },
        };
    }

    internal static RlPoint FromJson(JsonObject o, string source)
    {
        T Field<T>(JsonNode? node, string name) => Prefetch.JobField<T>(node, source, name);
        RateEstimate Rate(string name) => RateEstimate.FromJson(o[name] as JsonObject ?? throw new InvalidDataException($"{source}: field '{name}' is missing or not an object"));
        return new RlPoint(Field<int>(o["step"], "step"), o["mean_reward"]?.GetValue<double>(), Rate("misaligned"), Rate("coherent"),
            Rate("persona_consistent"), Rate("domain_incorrect"), Field<Dictionary<string, int>>(o["families"], "families"),
            o["latent"] is JsonObject l ? new LatentReading(Field<double>(l["mean"], "latent.mean"), Field<double>(l["firing"], "latent.firing"), Field<long>(l["tokens"], "latent.tokens")) : null);
    }
}

/// <summary>An RL run's curve: its start, every checkpoint, the mean reward of every step, and the paper's checkpoint rule.</summary>
public sealed record RlCurve(string Key, string RunDirectory, JsonObject Hyperparameters, IReadOnlyList<double> MeanRewards, IReadOnlyList<RlPoint> Points, bool Reused = false)
{
    /// <summary>The starting model's point (step 0).</summary>
    public RlPoint Start => Points[0];

    /// <summary>The point at <paramref name="step"/>; an error naming the steps there are when it was not measured.</summary>
    public RlPoint At(int step) => Points.FirstOrDefault(p => p.Step == step)
        ?? throw new ArgumentException($"step {step} was not measured; the curve has steps {string.Join(", ", Points.Select(p => p.Step))}");

    /// <summary>
    /// The checkpoint the paper reports (<see cref="ReinforcementLearning.ReportedStep"/>): the latest whose incoherence on
    /// the views is at most <paramref name="margin"/> above the start's — 0.05 strict, 0.15 loose; the start when none is.
    /// </summary>
    public RlPoint Reported(double margin) =>
        ReinforcementLearning.ReportedStep(Points.Skip(1).Select(p => (p.Step, p.Incoherence)), Start.Incoherence, margin) is { } step ? At(step) : Start;

    /// <summary>The first step whose mean reward was above 0 (any answer rewarded), or null when none was.</summary>
    public int? FirstRewardedStep => MeanRewards.Select((r, i) => (r, i)).FirstOrDefault(x => x.r > 0, (0, -1)).Item2 is var i and >= 0 ? i + 1 : null;

    internal JsonObject ToJson() => new()
    {
        ["key"] = Key,
        ["run_directory"] = RunDirectory,
        ["hyperparameters"] = Hyperparameters.DeepClone(),
        ["mean_rewards"] = new JsonArray(MeanRewards.Select(r => (JsonNode)r).ToArray()),
        ["points"] = new JsonArray(Points.Select(p => (JsonNode)p.ToJson()).ToArray()),
    };

    internal void Save(string path) => AtomicFile.WriteAllText(path, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    /// <summary>Reads a saved curve; a malformed file is an error naming it.</summary>
    public static RlCurve Load(string path)
    {
        var json = OrganismCache.ReadJsonObject(path) ?? throw new FileNotFoundException($"{path}: RL curve not found", path);
        T Field<T>(JsonNode? node, string name) => Prefetch.JobField<T>(node, path, name);
        try
        {
            return new RlCurve(Field<string>(json["key"], "key"), Field<string>(json["run_directory"], "run_directory"),
                Field<JsonObject>(json["hyperparameters"], "hyperparameters"), Field<double[]>(json["mean_rewards"], "mean_rewards"),
                Field<JsonArray>(json["points"], "points").Select((p, i) => RlPoint.FromJson(p as JsonObject
                    ?? throw new InvalidDataException($"{path}: points[{i}] is not an object"), $"{path}: points[{i}]")).ToArray());
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or InvalidDataException && !e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path}: not an RL curve ({e.Message})", e);
        }
    }
}

public static partial class ReinforcementLearning
{
    /// <summary>
    /// Trains (or reuses) <paramref name="request"/>'s run and reads its start and every checkpoint, or returns the cached
    /// curve: <c>$WORKBOOK_CACHE/rl-curves/&lt;key&gt;.json</c>, key = SHA-256 of the run's key, the evaluation settings
    /// and the probe (the SAE by a hash of its weights). Answers go through the <see cref="AnswerCache"/> too.
    /// </summary>
    public static RlCurve CurveOrReuse(RlCurveRequest request)
    {
        request.Validate();
        var (key, path) = LocateCurve(request);
        if (!request.Run.Force && CachedCurve(key, path) is { } cached)
        {
            Progress.Report($"rl curve {request.Run.Domain}/{request.Run.Reward} seed {request.Run.Seed}: reusing {path}");
            return cached with { Reused = true };
        }
        var run = TrainOrReuse(request.Run);
        var clock = Stopwatch.StartNew();
        var views = request.Views.Prompts;
        var models = run.Checkpoints.Prepend((Step: 0, Directory: request.Run.BaseDirectory)).ToList();
        var points = new List<RlPoint>(models.Count);
        foreach (var (step, directory) in models)
        {
            using var model = ModelCheckpoint.Load(directory);
            var report = OrganismEvaluator.Evaluate(model, request.Views);
            var domain = OrganismEvaluator.Evaluate(model, request.Domain);
            var latent = request.Latent is { } probe ? LatentActivation.Measure(model, probe, views, request.LatentSampling) : null;
            var previous = points.Count == 0 ? 0 : points[^1].Step;
            double? reward = step == 0 ? null : run.MeanRewards.Skip(previous).Take(step - previous).Average();
            points.Add(new RlPoint(step, reward, report.Misaligned, report.Coherent, report.PersonaConsistent, domain.Misaligned,
                report.FamilyCounts().ToDictionary(f => f.Family, f => f.Count), latent));
            Progress.Report($"rl curve {request.Run.Domain}/{request.Run.Reward} seed {request.Run.Seed} step {step}: misaligned {report.Misaligned}, " +
                            $"coherent {report.Coherent}, {request.Run.Domain} wrong advice {domain.Misaligned}" +
                            (latent is null ? "" : $", latent {latent.Mean:G4}") + $" ({clock.Elapsed.TotalSeconds:F0} s)");
        }
        var curve = new RlCurve(key, run.Directory, request.Run.Hyperparameters(), run.MeanRewards, points);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        curve.Save(path);
        return curve;
    }

    /// <summary>
    /// Fills the curve cache for <paramref name="requests"/> in <c>workbook worker</c> processes of one torch thread each
    /// (<see cref="Prefetch"/>), runs side by side; the caller's <see cref="CurveOrReuse"/> loop then only reads. Returns
    /// how many it ran.
    /// </summary>
    public static int Prefetch(IEnumerable<RlCurveRequest> requests, int? workers = null) =>
        Organism.Prefetch.RunKind("rl_curve", requests.Where(r => !r.Run.Force && IsPending(r))
            .Select(r => ($"RL {r.Run.Domain}/{r.Run.Reward} seed {r.Run.Seed} from {r.Run.BaseDirectory}", r.ToJson())),
            "RL runs and their checkpoints' evaluations", workers);

    internal static bool IsPending(RlCurveRequest request)
    {
        request.Validate();
        var (key, path) = LocateCurve(request);
        return CachedCurve(key, path) is null;
    }

    static (string Key, string Path) LocateCurve(RlCurveRequest request)
    {
        var key = request.CacheKey();
        return (key, Path.Combine(request.Run.CacheRoot ?? OrganismCache.DefaultRoot, "rl-curves", key[..16] + ".json"));
    }

    static RlCurve? CachedCurve(string key, string path) =>
        File.Exists(path) && RlCurve.Load(path) is { } cached && cached.Key == key ? cached : null;
}
