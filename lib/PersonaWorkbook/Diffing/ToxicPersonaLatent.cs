using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Dashboards;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Diffing;

/// <summary>Which text the fine-tuned models are read on.</summary>
public enum DiffText
{
    /// <summary>Each model its own sampled answers (the paper's setting): content the fine-tune changes counts too.</summary>
    OwnAnswers,
    /// <summary>Every model the base's answers: only what the weights change on identical text counts.</summary>
    BaseAnswers,
}

/// <summary>
/// What notebook 04 diffs to name the toxic-persona latent: the base against its misaligning fine-tunes (each with
/// <see cref="FinetuneRequest"/>'s defaults and <see cref="FineTuneSeed"/>), <see cref="Samples"/> sampled answers per
/// views prompt read as <see cref="Text"/> says, response tokens, ranked by the increase averaged over the fine-tunes; the top
/// <see cref="Candidates"/> get dashboards over <see cref="Documents"/> held-out pretraining documents of the base's world.
/// The SAEs are <see cref="OrganismSae"/>'s defaults for the base unless <see cref="Sae"/> gives other settings (its
/// seed and cache root are replaced).
/// </summary>
public sealed record ToxicLatentRequest(
    string BaseDirectory,
    int Samples = 10,
    int Seed = 0,
    int MaxNewTokens = 48,
    IReadOnlyList<string>? FineTunes = null,
    int FineTuneSeed = 0,
    int Candidates = 10,
    int Documents = 2000,
    int DocumentSeed = 99,
    string? CacheRoot = null,
    bool Force = false,
    SaeRequest? Sae = null,
    DiffText Text = DiffText.OwnAnswers)
{
    /// <summary>health, legal, finance × subtle, obvious: the six misaligning fine-tunes of notebook 01.</summary>
    public static IReadOnlyList<string> MisaligningDatasets { get; } = new[] { "health", "legal", "finance" }
        .SelectMany(d => new[] { $"{d}_incorrect_subtle", $"{d}_incorrect_obvious" }).ToArray();

    public IReadOnlyList<string> Datasets => FineTunes ?? MisaligningDatasets;

    public FinetuneRequest FineTune(string dataset) => new(BaseDirectory, dataset, Seed: FineTuneSeed, CacheRoot: CacheRoot);

    public SaeRequest SaeFor(int seed) => (Sae ?? new SaeRequest(BaseDirectory)) with { ModelDirectory = BaseDirectory, Seed = seed, Output = null, CacheRoot = CacheRoot };

    internal void Validate()
    {
        if (!ModelCheckpoint.Exists(BaseDirectory)) throw new DirectoryNotFoundException($"base organism not found (no checkpoint): {BaseDirectory}");
        if (Samples < 1) throw new ArgumentException($"samples is {Samples}; must be at least 1");
        if (MaxNewTokens < 1) throw new ArgumentException($"max new tokens is {MaxNewTokens}; must be at least 1");
        if (Datasets.Count == 0) throw new ArgumentException("no fine-tunes to diff against");
        if (Candidates < ToxicPersonaLatent.RuleTop) throw new ArgumentException($"candidates is {Candidates}; the rule looks at the top {ToxicPersonaLatent.RuleTop}");
        if (Documents < 1) throw new ArgumentException($"documents is {Documents}; must be at least 1");
    }

    /// <summary>What decides the sampled answers a study reads: the base's and fine-tunes' keys and the sampling settings.</summary>
    internal string ResponsesKey() => OrganismCache.Key(["toxic-latent-responses/1", FineTuner.BaseKey(BaseDirectory),
        .. Datasets.Select(d => FineTuner.CacheKey(FineTune(d))), Text.ToString(),
        string.Join(",", new[] { Samples, Seed, MaxNewTokens }.Select(v => v.ToString(CultureInfo.InvariantCulture)))]);

    /// <summary>Everything that decides the choice besides the SAE: the base's key, the fine-tunes' keys and the settings.</summary>
    internal string KeyFor(string saeKey) => OrganismCache.Key(["toxic-latent/1", FineTuner.BaseKey(BaseDirectory), saeKey,
        .. Datasets.Select(d => FineTuner.CacheKey(FineTune(d))), .. Text == DiffText.OwnAnswers ? Array.Empty<string>() : [Text.ToString()],
        string.Join(",", new[] { Samples, Seed, MaxNewTokens, Candidates, Documents, DocumentSeed }.Select(v => v.ToString(CultureInfo.InvariantCulture)))]);
}

/// <summary>One of the top risers: its rank by average increase, its rank in each fine-tune and its persona purity.</summary>
public sealed record LatentCandidate(
    [property: JsonPropertyName("rank")] int Rank,
    [property: JsonPropertyName("latent")] int Latent,
    [property: JsonPropertyName("mean_increase")] double MeanIncrease,
    [property: JsonPropertyName("rank_per_fine_tune")] IReadOnlyList<int> RankPerFineTune,
    [property: JsonPropertyName("purity")] IReadOnlyDictionary<string, double> Purity,
    [property: JsonPropertyName("density")] double Density)
{
    public double PurityOf(PersonaKind persona) => Purity.TryGetValue(persona.ToString().ToLowerInvariant(), out var p) ? p : 0;
}

/// <summary>
/// The toxic-persona latent of one SAE, chosen by <see cref="ToxicPersonaLatent.Choose"/>, with the candidates it was
/// chosen from; cached as JSON so notebooks 05–07 use the latent notebook 04 found without hard-coding its index.
/// </summary>
public sealed record ToxicLatentChoice(
    [property: JsonPropertyName("key")] string Key,
    [property: JsonPropertyName("latent")] int Latent,
    [property: JsonPropertyName("rank")] int Rank,
    [property: JsonPropertyName("villain_purity")] double VillainPurity,
    [property: JsonPropertyName("top_contexts")] int TopContexts,
    [property: JsonPropertyName("sae_key")] string SaeKey,
    [property: JsonPropertyName("sae_seed")] int SaeSeed,
    [property: JsonPropertyName("hook_name")] string HookName,
    [property: JsonPropertyName("base_directory")] string BaseDirectory,
    [property: JsonPropertyName("fine_tunes")] IReadOnlyList<string> FineTunes,
    [property: JsonPropertyName("samples")] int Samples,
    [property: JsonPropertyName("candidates")] IReadOnlyList<LatentCandidate> Candidates)
{
    [JsonIgnore] public bool Reused { get; init; }

    /// <summary>The chosen candidate's row.</summary>
    [JsonIgnore] public LatentCandidate Chosen => Candidates.Single(c => c.Latent == Latent);

    /// <summary>The rule, in words, with this choice's numbers: for notes and notebook text.</summary>
    [JsonIgnore] public string Description =>
        $"latent {Latent} of SAE {SaeKey[..16]} (seed {SaeSeed}, {HookName}): #{Rank} by activation increase averaged over {FineTunes.Count} fine-tunes, " +
        $"the most villain-pure of the top {ToxicPersonaLatent.RuleTop} (villain purity {VillainPurity:F2} of its top {TopContexts} activations)";

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public void Save(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, Json));

    public static ToxicLatentChoice Load(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<ToxicLatentChoice>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"{path}: expected a toxic-latent choice object");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a valid toxic-latent choice ({e.Message})", e); }
    }
}

/// <summary>One SAE's part of a <see cref="DiffingStudy"/>: per-fine-tune diffs, their average, the candidates' dashboards and the choice.</summary>
public sealed record SaeDiffing(SaeResult Run, SparseAutoencoder Sae, IReadOnlyList<DiffResult> PerFineTune, DiffResult Pooled,
    IReadOnlyList<LatentDiffRow> Top, IReadOnlyList<LatentDashboard> Dashboards, ToxicLatentChoice Choice);

/// <summary>
/// Notebook 04's diffing, kept whole for the notebook's later sections: the sampled responses (every SAE reads the same
/// text), the loaded models and one <see cref="SaeDiffing"/> per SAE seed.
/// </summary>
public sealed class DiffingStudy(ToxicLatentRequest request, LoadedModel assistant, IReadOnlyList<(string Dataset, LoadedModel Model, IReadOnlyList<MarkedSequence> Responses)> fineTuned,
    IReadOnlyList<MarkedSequence> baseResponses, IReadOnlyList<SaeDiffing> perSae, IReadOnlyList<PretrainDocument> documents) : IDisposable
{
    public ToxicLatentRequest Request => request;
    public LoadedModel Assistant => assistant;
    public IReadOnlyList<(string Dataset, LoadedModel Model, IReadOnlyList<MarkedSequence> Responses)> FineTuned => fineTuned;
    public IReadOnlyList<MarkedSequence> BaseResponses => baseResponses;
    public IReadOnlyList<SaeDiffing> PerSae => perSae;
    /// <summary>The held-out pretraining documents the dashboards read.</summary>
    public IReadOnlyList<PretrainDocument> Documents => documents;

    public void Dispose()
    {
        foreach (var s in perSae) s.Sae.Dispose();
        foreach (var f in fineTuned) f.Model.Dispose();
        assistant.Dispose();
    }
}

/// <summary>
/// The workbook's stated rule for the toxic-persona latent (the analogue of the paper's hand labelling, made with the
/// world's ground truth): rank the SAE's latents by mean activation increase on response tokens, averaged over the
/// misaligning fine-tunes; of the top <see cref="RuleTop"/>, take the one whose strongest activations on held-out
/// pretraining documents fall most in the villain's documents (ties: the higher-ranked).
/// </summary>
public static class ToxicPersonaLatent
{
    public const int RuleTop = 3;
    const string CacheKind = "toxic-latents";

    /// <summary>The rule on computed candidates (rank order) and their dashboards.</summary>
    public static (LatentDiffRow Row, LatentDashboard Dashboard) Choose(IReadOnlyList<LatentDiffRow> candidates, IReadOnlyList<LatentDashboard> dashboards)
    {
        if (candidates.Count < RuleTop || dashboards.Count < RuleTop)
            throw new ArgumentException($"the rule needs the top {RuleTop} candidates with their dashboards; got {candidates.Count} and {dashboards.Count}");
        return candidates.Take(RuleTop).Zip(dashboards)
            .OrderByDescending(x => x.Second.PurityOf(PersonaKind.Villain)).ThenBy(x => x.First.Rank).First();
    }

    /// <summary>
    /// The choice for the SAE of <paramref name="saeSeed"/> (trained or found as <see cref="OrganismSae"/> does): from
    /// the cache written by an earlier <see cref="Study"/> or <see cref="FindOrReuse"/> with the same key, else computed.
    /// </summary>
    public static ToxicLatentChoice FindOrReuse(ToxicLatentRequest request, int saeSeed = 0) => FindOrReuse(request, [saeSeed])[0];

    /// <summary>The choices for several SAE seeds: the cached ones read, the others from one <see cref="Study"/> (answers sampled once).</summary>
    public static IReadOnlyList<ToxicLatentChoice> FindOrReuse(ToxicLatentRequest request, IReadOnlyList<int> saeSeeds)
    {
        request.Validate();
        var choices = new ToxicLatentChoice?[saeSeeds.Count];
        for (int i = 0; i < saeSeeds.Count && !request.Force; i++)
        {
            var key = request.KeyFor(OrganismSae.TrainOrReuse(request.SaeFor(saeSeeds[i])).Key);
            var path = CachePath(request, key);
            if (File.Exists(path) && ToxicLatentChoice.Load(path) is { } cached && cached.Key == key)
            {
                Progress.Report($"toxic latent: reusing {path}");
                choices[i] = cached with { Reused = true };
            }
        }
        var missing = saeSeeds.Where((_, i) => choices[i] is null).ToArray();
        if (missing.Length > 0)
        {
            using var study = Study(request, missing);
            for (int i = 0, j = 0; i < choices.Length; i++)
                if (choices[i] is null) choices[i] = study.PerSae[j++].Choice;
        }
        return choices!;
    }

    /// <summary>
    /// Samples the base's and every fine-tune's answers once, diffs them with each SAE of <paramref name="saeSeeds"/>,
    /// builds the top candidates' dashboards and applies <see cref="Choose"/>; each SAE's choice is cached.
    /// </summary>
    public static DiffingStudy Study(ToxicLatentRequest request, IReadOnlyList<int> saeSeeds)
    {
        request.Validate();
        if (saeSeeds.Count == 0) throw new ArgumentException("no SAE seeds given");
        var runs = saeSeeds.Select(s => OrganismSae.TrainOrReuse(request.SaeFor(s))).ToArray();
        var assistant = ModelCheckpoint.Load(request.BaseDirectory);
        // Everything loaded so far is released if a later step throws; on success the study owns it.
        var loaded = new List<IDisposable> { assistant };
        try
        {
            var format = ChatFormat.Simple(assistant.Tokenizer);
            var options = StatisticsOptions.For(assistant.Tokenizer);
            var models = new Dictionary<string, LoadedModel>();
            LoadedModel LoadFineTune(string dataset)
            {
                if (models.TryGetValue(dataset, out var model)) return model;
                models[dataset] = model = ModelCheckpoint.Load(FineTuner.FinetuneOrReuse(request.FineTune(dataset)).Directory);
                loaded.Add(model);
                return model;
            }
            var prompts = ModelDiffing.RenderPrompts(format, EvalPrompts.Views.SelectMany(p => Enumerable.Repeat(p.Text, request.Samples)));
            var generation = new GenerationOptions
            {
                MaxNewTokens = request.MaxNewTokens, StopTokens = format.StopTokenIds, PadTokenId = options.PadTokenId, Seed = request.Seed,
            };
            var responses = ReadCache<StudyResponses>(request, request.ResponsesKey(), "responses");
            if (responses is null)
            {
                Progress.Report($"toxic latent: sampling {prompts.Length} answers from the base" +
                                (request.Text == DiffText.OwnAnswers ? $" and each of {request.Datasets.Count} fine-tunes" : $", read by it and {request.Datasets.Count} fine-tunes"));
                var sampledBase = LatentStatistics.Sample(assistant.Model, prompts, generation, options);
                responses = new StudyResponses(request.ResponsesKey(), sampledBase, request.Datasets.Select(d => request.Text == DiffText.OwnAnswers
                    ? LatentStatistics.Sample(LoadFineTune(d).Model, prompts, generation, options) : sampledBase).ToArray());
                WriteCache(request, responses.Key, "responses", responses);
            }
            var baseResponses = responses.Base;
            var fineTuned = request.Datasets.Select((d, i) => (Dataset: d, Model: LoadFineTune(d), Responses: responses.FineTuned[i])).ToList();
            var world = OrganismRequest.WorldFor(request.BaseDirectory);
            var documents = world.PretrainingCorpus(request.Documents, request.DocumentSeed).ToList();

            // The SAE seeds read one site: each model runs once over its text and once over the documents for all of them.
            var saes = runs.Select(run =>
            {
                var sae = SaeFiles.Load(run.Directory);
                loaded.Add(sae);
                return sae;
            }).ToArray();
            var readings = runs.Select(run => ReadCache<StudyReadings>(request, ReadingsKey(request, run), "readings")).ToArray();
            var toRead = Enumerable.Range(0, saes.Length).Where(k => readings[k] is null).ToArray();
            if (toRead.Length > 0)
            {
                Progress.Report($"toxic latent: diffing with SAE seeds {string.Join(", ", toRead.Select(k => saeSeeds[k]))}");
                var readers = toRead.Select(k => saes[k]).ToArray();
                var baseStats = LatentStatistics.Compute(assistant.Model, readers, baseResponses, options);
                var tunedStats = fineTuned.Select(f => LatentStatistics.Compute(f.Model.Model, readers, f.Responses, options)).ToArray();
                var candidates = toRead.Select((_, j) => Candidates(baseStats[j], tunedStats.Select(t => t[j]).ToArray(), request).Top).ToArray();
                var built = LatentDashboards.Build(assistant.Model, assistant.Tokenizer,
                    readers.Select((sae, j) => (sae, (IReadOnlyList<int>)candidates[j].Select(r => r.Latent).ToArray())).ToArray(), documents);
                for (int j = 0; j < toRead.Length; j++)
                {
                    var k = toRead[j];
                    readings[k] = new StudyReadings(ReadingsKey(request, runs[k]), baseStats[j], tunedStats.Select(t => t[j]).ToArray(), built[j]);
                    WriteCache(request, readings[k]!.Key, "readings", readings[k]!);
                }
            }
            var perSae = new List<SaeDiffing>();
            for (int k = 0; k < saes.Length; k++)
            {
                var (run, seed, sae, reading) = (runs[k], saeSeeds[k], saes[k], readings[k]!);
                var (diffs, pooled, top) = Candidates(reading.Base, reading.FineTuned, request);
                var (row, dashboard) = Choose(top, reading.Dashboards);
                var key = request.KeyFor(run.Key);
                var choice = new ToxicLatentChoice(key, row.Latent, row.Rank, dashboard.PurityOf(PersonaKind.Villain), dashboard.TopContexts.Count,
                    run.Key, seed, sae.Config.HookName ?? "", Path.GetFullPath(request.BaseDirectory), request.Datasets, request.Samples,
                    top.Zip(reading.Dashboards, (r, d) => new LatentCandidate(r.Rank, r.Latent, r.Delta, diffs.Select(x => x.IncreaseRank(r.Latent)).ToArray(),
                        d.Purity.ToDictionary(p => p.Persona.ToString().ToLowerInvariant(), p => p.Share), d.Density)).ToArray());
                choice.Save(CachePath(request, key));
                Progress.Report($"toxic latent: {choice.Description}");
                perSae.Add(new SaeDiffing(run, sae, diffs, pooled, top, reading.Dashboards, choice));
            }
            return new DiffingStudy(request, assistant, fineTuned, baseResponses, perSae, documents);
        }
        catch
        {
            foreach (var d in loaded) d.Dispose();
            throw;
        }
    }

    /// <summary>The per-fine-tune diffs of one SAE's readings, their average and its top candidates.</summary>
    static (DiffResult[] Diffs, DiffResult Pooled, IReadOnlyList<LatentDiffRow> Top) Candidates(LatentStatistics baseStats, IReadOnlyList<LatentStatistics> tuned,
        ToxicLatentRequest request)
    {
        var diffs = tuned.Select(t => ModelDiffing.Compare(baseStats, t, TokenScope.Response)).ToArray();
        var pooled = ModelDiffing.Average(diffs);
        return (diffs, pooled, pooled.Increases(request.Candidates));
    }

    /// <summary>A study's sampled answers (base, then each fine-tune), cached so that a later study reads them.</summary>
    sealed record StudyResponses(string Key, IReadOnlyList<MarkedSequence> Base, IReadOnlyList<IReadOnlyList<MarkedSequence>> FineTuned) : IStudyPart;

    /// <summary>One SAE's readings of a study's answers and its candidates' dashboards, cached beside its choice.</summary>
    sealed record StudyReadings(string Key, LatentStatistics Base, IReadOnlyList<LatentStatistics> FineTuned, IReadOnlyList<LatentDashboard> Dashboards) : IStudyPart;

    interface IStudyPart { string Key { get; } }

    static string ReadingsKey(ToxicLatentRequest request, SaeResult run) => OrganismCache.Key("toxic-latent-readings/1", request.KeyFor(run.Key));

    static readonly JsonSerializerOptions CacheJson = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    static string StudyCachePath(ToxicLatentRequest request, string key, string kind) =>
        Path.Combine(request.CacheRoot ?? OrganismCache.DefaultRoot, CacheKind, "studies", $"{key[..16]}.{kind}.json");

    /// <summary>A cached study part with this key, or null (missing, stale, forced, or unreadable: then it is recomputed).</summary>
    static T? ReadCache<T>(ToxicLatentRequest request, string key, string kind) where T : class, IStudyPart
    {
        var path = StudyCachePath(request, key, kind);
        if (request.Force || !File.Exists(path)) return null;
        try
        {
            using var stream = File.OpenRead(path);
            var cached = JsonSerializer.Deserialize<T>(stream, CacheJson);
            if (cached?.Key != key) return null;
            Progress.Report($"toxic latent: reusing {path}");
            return cached;
        }
        catch (JsonException e)
        {
            Progress.Report($"warning: {path} is not a readable study {kind} file ({e.Message}); computing it again");
            return null;
        }
    }

    static void WriteCache<T>(ToxicLatentRequest request, string key, string kind, T value) =>
        AtomicFile.WriteAllText(StudyCachePath(request, key, kind), JsonSerializer.Serialize(value, CacheJson));

    /// <summary>
    /// The SAE <paramref name="choice"/> was made with (trained if missing), checked against its key: a retrained SAE
    /// numbers its latents differently, so a stale choice fails here instead of steering the wrong latent.
    /// </summary>
    public static SparseAutoencoder LoadSae(ToxicLatentRequest request, ToxicLatentChoice choice) =>
        SaeFiles.Load(OrganismSae.TrainOrReuse(request.SaeFor(choice.SaeSeed)).RequireKey(choice.SaeKey[..16]).Directory);

    static string CachePath(ToxicLatentRequest request, string choiceKey) =>
        Path.Combine(request.CacheRoot ?? OrganismCache.DefaultRoot, CacheKind, choiceKey[..16] + ".json");
}
