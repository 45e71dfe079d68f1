using Deedle;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Models;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Sae;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Steering;

/// <summary>How the latent screen searches each latent's strength.</summary>
public sealed record ScreenOptions
{
    /// <summary>The strengths tried (α ≥ 0; the sign is <see cref="Sign"/>).</summary>
    public required AlphaSearch Search { get; init; }
    /// <summary>Largest incoherent share (1 − coherent rate) an acceptable α may have; the paper's 10 %.</summary>
    public double MaxIncoherence { get; init; } = 0.10;
    /// <summary>+1 adds the decoder direction (does it induce misalignment on the base model), −1 subtracts it (does it suppress it on a fine-tune).</summary>
    public int Sign { get; init; } = +1;
    public Positions Positions { get; init; } = Positions.All;
    /// <summary>Seeds the random controls.</summary>
    public long Seed { get; init; }

    internal void Validate()
    {
        if (Sign is not (1 or -1)) throw new ArgumentException($"ScreenOptions.Sign must be +1 or -1, got {Sign}");
        if (!(MaxIncoherence is >= 0 and <= 1)) throw new ArgumentException($"ScreenOptions.MaxIncoherence must be in [0, 1], got {MaxIncoherence}");
    }
}

/// <summary>One α the search tried for a latent and the incoherence it measured there.</summary>
public sealed record ScreenTrial(double Alpha, double Incoherence, double Misaligned);

/// <summary>
/// One latent's screen: the strongest α (magnitude; the vector is Sign·α in <see cref="Scale"/>'s unit along the
/// decoder row) whose incoherence stayed within the bound, and the evaluation there beside its random control; null
/// <see cref="Alpha"/> and <see cref="At"/> when no tried α was coherent enough. <c>At.Alpha</c> is the signed
/// strength applied (Sign·α).
/// </summary>
public sealed record LatentScreenResult(int Latent, int Sign, SteeringScale Scale, double? Alpha, IReadOnlyList<ScreenTrial> Trials, SteeringSweepRow? At)
{
    /// <summary>Steered minus control misaligned rate at the chosen α (NaN when none).</summary>
    public double MisalignedShift => At is null ? double.NaN : At.Misaligned.Rate - At.ControlMisaligned.Rate;
}

/// <summary>A screen result flattened for a data frame; NaN where no α was acceptable.</summary>
public sealed record LatentScreenFrameRow(
    int Latent, int Sign, string Unit, double Reference, double Alpha, int Trials,
    double Misaligned, double MisalignedLow, double MisalignedHigh,
    double Coherent, double CoherentLow, double CoherentHigh,
    double ControlMisaligned, double ControlMisalignedLow, double ControlMisalignedHigh,
    double ControlCoherent, double ControlCoherentLow, double ControlCoherentHigh,
    double MisalignedShift);

/// <summary>
/// The paper's screen (Wang et al. §4.3): steer each candidate latent's decoder direction at every position, at the
/// strongest strength whose incoherence stays within a bound, and see which latents move the misaligned rate: up with
/// Sign +1 on the base model, down with Sign −1 on a misaligned fine-tune. Every chosen α is also run with a random
/// direction of the same norm.
/// </summary>
public static class LatentScreen
{
    /// <summary>The top-N latents whose mean activation rose most from base to fine-tune (the paper screens the top 1,000).</summary>
    public static IReadOnlyList<int> Candidates(DiffResult diff, int top) => diff.Increases(top).Select(r => r.Latent).ToArray();

    /// <param name="scaleFor">Each latent's unit of α, e.g. its max activation (<see cref="SteeringScale.MaxActivation"/>) or one shared median-norm scale.</param>
    /// <param name="evaluate">Evaluates the (steered) model; called once per tried α and once more for the control at the chosen α.</param>
    public static IReadOnlyList<LatentScreenResult> Run(LlamaForCausalLM model, SparseAutoencoder sae, string site, IReadOnlyList<int> latents,
        Func<int, SteeringScale> scaleFor, Func<LlamaForCausalLM, EvalReport> evaluate, ScreenOptions options)
    {
        options.Validate();
        if (latents.Count == 0) throw new ArgumentException("no latents to screen", nameof(latents));
        var results = new List<LatentScreenResult>(latents.Count);
        foreach (var latent in latents)
        {
            using var scope = NewDisposeScope();
            var direction = Steer.DecoderRow(sae, latent);
            var steering = new SteeringOptions { Scale = scaleFor(latent), Positions = options.Positions, Seed = options.Seed };
            var trials = new Dictionary<double, (EvalReport Report, double Norm)>();
            bool Acceptable(double alpha)
            {
                if (!trials.TryGetValue(alpha, out var t))
                    trials[alpha] = t = SteeringSweep.Steered(model, site, direction, options.Sign * alpha, steering, evaluate);
                return 1 - t.Report.Coherent.Rate <= options.MaxIncoherence + 1e-12;
            }
            var chosen = options.Search.Find(Acceptable);
            SteeringSweepRow? at = null;
            if (chosen is double a)
            {
                var (report, norm) = trials[a];
                var (control, controlNorm) = SteeringSweep.Control(model, site, direction, options.Sign * a, norm, steering, evaluate);
                at = new SteeringSweepRow(options.Sign * a, norm, controlNorm, report, control);
            }
            var tried = trials.Select(kv => new ScreenTrial(kv.Key, 1 - kv.Value.Report.Coherent.Rate, kv.Value.Report.Misaligned.Rate)).ToArray();
            var result = new LatentScreenResult(latent, options.Sign, steering.Scale, chosen, tried, at);
            Progress.Report(at is null
                ? $"screen latent {latent} ({(options.Sign > 0 ? "+" : "−")}): no α of {tried.Length} tried kept incoherence ≤ {options.MaxIncoherence:P0}"
                : $"screen latent {latent} ({(options.Sign > 0 ? "+" : "−")}): α={chosen:G4} ({steering.Scale}) misaligned {at.Misaligned}, coherent {at.Coherent}; random control misaligned {at.ControlMisaligned}");
            results.Add(result);
        }
        return results;
    }

    /// <summary>The screen with <see cref="OrganismEvaluator.Evaluate"/> on the given prompts as the evaluation.</summary>
    public static IReadOnlyList<LatentScreenResult> Run(LoadedModel model, SparseAutoencoder sae, string site, IReadOnlyList<int> latents,
        Func<int, SteeringScale> scaleFor, IReadOnlyList<EvalPrompt> prompts, EvalOptions evalOptions, ScreenOptions options, string promptSet = "custom") =>
        Run(model.Model, sae, site, latents, scaleFor, _ => OrganismEvaluator.Evaluate(model, prompts, evalOptions, promptSet), options);

    public static Frame<int, string> ToFrame(IEnumerable<LatentScreenResult> results) => Frame.FromRecords(results.Select(r =>
    {
        var f = r.At is null ? null : SteeringFrameRow.From(r.At);
        double V(Func<SteeringFrameRow, double> g) => f is null ? double.NaN : g(f);
        return new LatentScreenFrameRow(r.Latent, r.Sign, r.Scale.Unit.ToString(), r.Scale.Reference, r.Alpha ?? double.NaN, r.Trials.Count,
            V(x => x.Misaligned), V(x => x.MisalignedLow), V(x => x.MisalignedHigh),
            V(x => x.Coherent), V(x => x.CoherentLow), V(x => x.CoherentHigh),
            V(x => x.ControlMisaligned), V(x => x.ControlMisalignedLow), V(x => x.ControlMisalignedHigh),
            V(x => x.ControlCoherent), V(x => x.ControlCoherentLow), V(x => x.ControlCoherentHigh),
            r.MisalignedShift);
    }));
}
