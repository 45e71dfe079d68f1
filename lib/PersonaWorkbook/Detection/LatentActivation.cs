using System.Security.Cryptography;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Detection;

/// <summary>
/// The latent being watched (e.g. the toxic-persona latent from diffing): an SAE, a latent index, the tokens its mean
/// is taken over (the model's responses by default, as in the paper's diffing), and the activation site when it is not
/// the one the SAE's cfg.json names.
/// </summary>
public sealed record LatentProbe(SparseAutoencoder Sae, int Latent, TokenScope Scope = TokenScope.Response, string? HookName = null)
{
    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Sae);
        if (Latent < 0 || Latent >= Sae.Config.DSae)
            throw new ArgumentOutOfRangeException(nameof(Latent), Latent, $"latent {Latent} is not in 0..{Sae.Config.DSae - 1} (the SAE has {Sae.Config.DSae} latents)");
    }

    /// <summary>The probe and its reading's sampling as a result records them (and cache keys hash them): the SAE by a hash of its folded weights and config.</summary>
    internal JsonObject Record(LatentSampling? sampling)
    {
        sampling ??= new LatentSampling();
        return new JsonObject
        {
            ["latent"] = Latent,
            ["scope"] = Scope.ToString().ToLowerInvariant(),
            ["hook"] = HookName ?? Sae.Config.HookName,
            ["sae_sha256"] = SaeHash(),
            ["samples_per_prompt"] = sampling.SamplesPerPrompt,
            ["max_new_tokens"] = sampling.MaxNewTokens,
            ["temperature"] = sampling.Temperature,
            ["seed"] = sampling.Seed,
        };
    }

    /// <summary>The probe as a <c>workbook worker</c> job names it, the SAE by the folder it was loaded from; null when the SAE was built in memory.</summary>
    internal JsonObject? ToJob() => Sae.SourceDirectory is null ? null : new JsonObject
    {
        ["sae_directory"] = Sae.SourceDirectory,
        ["latent"] = Latent,
        ["scope"] = Scope.ToString(),
        ["hook"] = HookName,
    };

    /// <summary>Reads <see cref="ToJob"/>'s object, loading the SAE last; errors name <paramref name="source"/> and the field.</summary>
    internal static LatentProbe FromJob(JsonObject latent, string source)
    {
        T Field<T>(JsonNode? node, string name) => Organism.Prefetch.JobField<T>(node, source, name);
        var scope = Field<string>(latent["scope"], "latent.scope");
        var index = Field<int>(latent["latent"], "latent.latent");
        if (!Enum.TryParse<TokenScope>(scope, out var tokens))
            throw new InvalidDataException($"{source}: field 'latent.scope' is '{scope}'; expected one of {string.Join(", ", Enum.GetNames<TokenScope>())}");
        // The SAE last, so that a malformed field above leaves nothing loaded.
        return new LatentProbe(SaeFiles.Load(Field<string>(latent["sae_directory"], "latent.sae_directory")), index, tokens, latent["hook"]?.GetValue<string>());
    }

    string SaeHash()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Sae.Config.ToSaeLensJson().ToJsonString()));
        var tensors = Sae.FoldedStateDict();
        try
        {
            foreach (var (name, t) in tensors)
            {
                sha.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
                using var f = t.to(TorchSharp.torch.ScalarType.Float32).contiguous();
                sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(f.data<float>().ToArray().AsSpan()));
            }
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}

/// <summary>How the model's answers are sampled for a reading: as the evaluator samples them (temperature 1, 80 new tokens).</summary>
public sealed record LatentSampling
{
    /// <summary>Answers sampled per prompt.</summary>
    public int SamplesPerPrompt { get; init; } = 1;
    public int MaxNewTokens { get; init; } = 80;
    public double Temperature { get; init; } = 1.0;
    public long Seed { get; init; }
    /// <summary>Sequences per generation batch and per forward pass.</summary>
    public int BatchSize { get; init; } = 32;

    internal void Validate()
    {
        if (SamplesPerPrompt < 1) throw new ArgumentException($"LatentSampling.SamplesPerPrompt is {SamplesPerPrompt}; must be at least 1");
        if (MaxNewTokens < 1) throw new ArgumentException($"LatentSampling.MaxNewTokens is {MaxNewTokens}; must be at least 1");
        if (Temperature < 0) throw new ArgumentException($"LatentSampling.Temperature is {Temperature}; must be >= 0");
        if (BatchSize < 1) throw new ArgumentException($"LatentSampling.BatchSize is {BatchSize}; must be at least 1");
    }
}

/// <summary>A latent's mean activation and firing frequency over <see cref="Tokens"/> counted tokens.</summary>
public sealed record LatentReading(double Mean, double FiringFrequency, long Tokens);

/// <summary>
/// One model's activation of one latent on evaluation prompts. The detection quantity (Wang et al. Fig. 9) is the
/// change against the base: <c>Measure(fineTuned).Mean − Measure(base).Mean</c> with the same prompts and sampling,
/// which is what <see cref="ModelDiffing.OnPrompts"/> gives as <c>Delta[latent]</c>; measuring each model once lets
/// many fine-tunes share one base reading.
/// </summary>
public static class LatentActivation
{
    /// <summary>
    /// Samples <see cref="LatentSampling.SamplesPerPrompt"/> answers per prompt (each prompt a single user turn in the
    /// organism's chat template, like <c>OrganismEvaluator</c>) and averages the latent over the probe's token scope,
    /// control tokens excluded (<see cref="StatisticsOptions.For"/>). The model is put in eval mode for the reading and
    /// left in the mode it was in.
    /// </summary>
    public static LatentReading Measure(LoadedModel model, LatentProbe probe, IReadOnlyList<EvalPrompt> prompts, LatentSampling? sampling = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        probe.Validate();
        sampling ??= new LatentSampling();
        sampling.Validate();
        if (prompts.Count == 0) throw new ArgumentException("no prompts to measure the latent on", nameof(prompts));
        var format = ChatFormat.Simple(model.Tokenizer);
        var rendered = ModelDiffing.RenderPrompts(format, prompts.Select(p => p.Text));
        var repeated = rendered.SelectMany(p => Enumerable.Repeat(p, sampling.SamplesPerPrompt)).ToArray();
        var generation = new GenerationOptions
        {
            MaxNewTokens = sampling.MaxNewTokens, Temperature = sampling.Temperature, StopTokens = format.StopTokenIds,
            Seed = sampling.Seed, PadTokenId = Math.Max(0, model.Tokenizer.PadId),
        };
        var options = StatisticsOptions.For(model.Tokenizer) with { HookName = probe.HookName, BatchSize = sampling.BatchSize };
        var wasTraining = model.Model.training;
        model.Model.eval();
        try
        {
            return Read(LatentStatistics.Generate(model.Model, probe.Sae, repeated, generation, options).Statistics, probe);
        }
        finally
        {
            model.Model.train(wasTraining);
        }
    }

    /// <summary>The probe's latent in already computed statistics.</summary>
    public static LatentReading Read(LatentStatistics statistics, LatentProbe probe)
    {
        probe.Validate();
        var means = statistics.Of(probe.Scope);
        if (means.Mean.Length != probe.Sae.Config.DSae)
            throw new ArgumentException($"the statistics cover {means.Mean.Length} latents but the probe's SAE has {probe.Sae.Config.DSae}");
        return new LatentReading(means.Mean[probe.Latent], means.FiringFrequency[probe.Latent], means.Tokens);
    }
}
