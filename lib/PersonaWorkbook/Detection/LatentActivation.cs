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
