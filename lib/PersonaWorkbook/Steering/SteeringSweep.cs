using Deedle;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Models;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Steering;

/// <summary>How a sweep or screen steers: the unit of α, the positions, and the random control's seed.</summary>
public sealed record SteeringOptions
{
    public SteeringScale Scale { get; init; } = SteeringScale.Raw;
    public Positions Positions { get; init; } = Positions.All;
    /// <summary>Seeds the random control directions (one per α, the same for the same α and seed).</summary>
    public long Seed { get; init; }
}

/// <summary>
/// One steering strength: the evaluation with α·direction added, and beside it the evaluation with a random direction
/// of the same norm (the control the paper and Soligo et al. run to show the effect is the direction's, not the norm's).
/// </summary>
public sealed record SteeringSweepRow(double Alpha, double VectorNorm, double ControlNorm, EvalReport Report, EvalReport Control)
{
    public RateEstimate Misaligned => Report.Misaligned;
    public RateEstimate Coherent => Report.Coherent;
    public RateEstimate ControlMisaligned => Control.Misaligned;
    public RateEstimate ControlCoherent => Control.Coherent;
}

/// <summary>A sweep row flattened for a data frame (intervals are 95 %).</summary>
public sealed record SteeringFrameRow(
    double Alpha, double VectorNorm,
    double Misaligned, double MisalignedLow, double MisalignedHigh,
    double Coherent, double CoherentLow, double CoherentHigh,
    double ControlMisaligned, double ControlMisalignedLow, double ControlMisalignedHigh,
    double ControlCoherent, double ControlCoherentLow, double ControlCoherentHigh)
{
    internal static SteeringFrameRow From(SteeringSweepRow r) => new(r.Alpha, r.VectorNorm,
        r.Misaligned.Rate, r.Misaligned.CiLow, r.Misaligned.CiHigh, r.Coherent.Rate, r.Coherent.CiLow, r.Coherent.CiHigh,
        r.ControlMisaligned.Rate, r.ControlMisaligned.CiLow, r.ControlMisaligned.CiHigh,
        r.ControlCoherent.Rate, r.ControlCoherent.CiLow, r.ControlCoherent.CiHigh);
}

/// <summary>Evaluates a model steered at each of several strengths, each beside a same-norm random control.</summary>
public static class SteeringSweep
{
    /// <summary>
    /// Per α, in the order given: <paramref name="evaluate"/> on the model with <c>options.Scale.Vector(direction, α)</c>
    /// added at <paramref name="site"/>, then on the model with a random direction of the same norm added instead.
    /// </summary>
    public static IReadOnlyList<SteeringSweepRow> Run(LlamaForCausalLM model, string site, Tensor direction, IReadOnlyList<double> alphas,
        Func<LlamaForCausalLM, EvalReport> evaluate, SteeringOptions? options = null)
    {
        if (alphas.Count == 0) throw new ArgumentException("no steering strengths to sweep", nameof(alphas));
        options ??= new SteeringOptions();
        var rows = new List<SteeringSweepRow>(alphas.Count);
        foreach (var alpha in alphas)
        {
            var row = At(model, site, direction, alpha, options, evaluate);
            Progress.Report($"steer {site} α={alpha:G4} ({options.Scale}): misaligned {row.Misaligned}, coherent {row.Coherent}; random control: misaligned {row.ControlMisaligned}, coherent {row.ControlCoherent}");
            rows.Add(row);
        }
        return rows;
    }

    /// <summary>The sweep with <see cref="OrganismEvaluator.Evaluate"/> on the given prompts as the evaluation.</summary>
    public static IReadOnlyList<SteeringSweepRow> Run(LoadedModel model, string site, Tensor direction, IReadOnlyList<double> alphas,
        IReadOnlyList<EvalPrompt> prompts, EvalOptions evalOptions, SteeringOptions? options = null, string promptSet = "custom") =>
        Run(model.Model, site, direction, alphas, _ => OrganismEvaluator.Evaluate(model, prompts, evalOptions, promptSet), options);

    public static Frame<int, string> ToFrame(IEnumerable<SteeringSweepRow> rows) => Frame.FromRecords(rows.Select(SteeringFrameRow.From));

    /// <summary>
    /// The row with the largest |α| whose coherent rate is at most <paramref name="maxCoherenceDrop"/> below the
    /// unsteered model's (the paper's "incoherence ≤ 10 %" read relative to a base that is itself not fully coherent)
    /// and whose random control moves the misaligned rate by at most <paramref name="maxControlShift"/> from the
    /// unsteered model's (1: any); null when no row qualifies. Ties in |α| go to the earlier row.
    /// </summary>
    public static SteeringSweepRow? StrongestCoherent(IEnumerable<SteeringSweepRow> rows, EvalReport unsteered, double maxCoherenceDrop = 0.10,
        double maxControlShift = 1)
    {
        if (!(maxCoherenceDrop is >= 0 and <= 1)) throw new ArgumentException($"the coherence drop bound must be in [0, 1], got {maxCoherenceDrop}");
        return Strongest(rows, unsteered, r => unsteered.Coherent.Rate - r.Coherent.Rate <= maxCoherenceDrop + 1e-12, maxControlShift);
    }

    /// <summary>
    /// The row with the largest |α| whose coherent rate is at least <paramref name="minCoherent"/> (an absolute bar,
    /// e.g. the organism issue's 80 %) and whose random control moves the misaligned rate by at most
    /// <paramref name="maxControlShift"/> from the unsteered model's; null when no row qualifies. Ties go to the earlier row.
    /// </summary>
    public static SteeringSweepRow? StrongestAbove(IEnumerable<SteeringSweepRow> rows, EvalReport unsteered, double minCoherent, double maxControlShift = 1)
    {
        if (!(minCoherent is >= 0 and <= 1)) throw new ArgumentException($"the coherence bar must be in [0, 1], got {minCoherent}");
        return Strongest(rows, unsteered, r => r.Coherent.Rate >= minCoherent - 1e-12, maxControlShift);
    }

    static SteeringSweepRow? Strongest(IEnumerable<SteeringSweepRow> rows, EvalReport unsteered, Func<SteeringSweepRow, bool> coherentEnough, double maxControlShift)
    {
        if (!(maxControlShift is >= 0 and <= 1)) throw new ArgumentException($"the control shift bound must be in [0, 1], got {maxControlShift}");
        SteeringSweepRow? best = null;
        foreach (var r in rows)
            if (coherentEnough(r) && Math.Abs(r.ControlMisaligned.Rate - unsteered.Misaligned.Rate) <= maxControlShift + 1e-12
                && (best is null || Math.Abs(r.Alpha) > Math.Abs(best.Alpha)))
                best = r;
        return best;
    }

    /// <summary>
    /// The largest absolute change, over the rows, of the random controls' rate (misaligned by default) from the
    /// unsteered model's: how far a same-norm direction alone moves the measure.
    /// </summary>
    public static double MaxControlShift(IEnumerable<SteeringSweepRow> rows, EvalReport unsteered, Func<EvalReport, RateEstimate>? measure = null)
    {
        measure ??= r => r.Misaligned;
        var reference = measure(unsteered).Rate;
        var shifts = rows.Select(r => Math.Abs(measure(r.Control).Rate - reference)).ToList();
        if (shifts.Count == 0) throw new ArgumentException("no sweep rows to take the control shift of", nameof(rows));
        return shifts.Max();
    }

    /// <summary>One α: the steered evaluation and its random control.</summary>
    internal static SteeringSweepRow At(LlamaForCausalLM model, string site, Tensor direction, double alpha, SteeringOptions options,
        Func<LlamaForCausalLM, EvalReport> evaluate)
    {
        var (report, norm) = Steered(model, site, direction, alpha, options, evaluate);
        var (control, controlNorm) = Control(model, site, direction, alpha, norm, options, evaluate);
        return new SteeringSweepRow(alpha, norm, controlNorm, report, control);
    }

    /// <summary>The evaluation with a random direction of norm <paramref name="norm"/> added (seeded by α), and that vector's norm.</summary>
    internal static (EvalReport Report, double Norm) Control(LlamaForCausalLM model, string site, Tensor direction, double alpha, double norm,
        SteeringOptions options, Func<LlamaForCausalLM, EvalReport> evaluate)
    {
        using var scope = NewDisposeScope();
        var random = Steer.RandomDirection(direction, norm, ControlSeed(options.Seed, alpha));
        var controlNorm = (double)random.norm().item<float>();
        using var steer = Steer.AddVector(model, site, random, options.Positions);
        return (evaluate(model), controlNorm);
    }

    /// <summary>The evaluation with α·direction added, and the added vector's norm.</summary>
    internal static (EvalReport Report, double Norm) Steered(LlamaForCausalLM model, string site, Tensor direction, double alpha, SteeringOptions options,
        Func<LlamaForCausalLM, EvalReport> evaluate)
    {
        using var scope = NewDisposeScope();
        var vector = options.Scale.Vector(direction, alpha);
        var norm = (double)vector.norm().item<float>();
        using var steer = Steer.AddVector(model, site, vector, options.Positions);
        return (evaluate(model), norm);
    }

    /// <summary>
    /// The seed and α's bits mixed (SplitMix64's finaliser), so a screen's control at α matches a sweep's at the same α.
    /// Folded to 32 bits because libtorch's CPU generator keeps only the low 32 bits of a seed, where the bits of
    /// round strengths like 0.5 and 2 are all zero.
    /// </summary>
    internal static long ControlSeed(long seed, double alpha)
    {
        unchecked
        {
            ulong z = (ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)BitConverter.DoubleToInt64Bits(alpha);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (long)((z ^ (z >> 32)) & 0xFFFF_FFFFUL);
        }
    }
}
