using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Models;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.Steering;
using PersonaWorkbook.Tests.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Steering;

public class SweepAndScreenTests
{
    const string Site = "blocks.0.hook_resid_post";

    static Tensor Ids => tensor(new long[] { 0, 1, 5, 6, 7, 2, 1, 8, 9, 10 }, [2, 5]);

    static RateEstimate Rate(double r) => new(r, Math.Max(0, r - 0.05), Math.Min(1, r + 0.05), 100);

    /// <summary>A report with only the two rates the steering code reads filled in.</summary>
    static EvalReport Report(double misaligned, double coherent) => new("fake", "fake", new EvalOptions(), [],
        Rate(misaligned), Rate(coherent), Rate(0), Rate(0), Rate(0), Rate(0), Rate(0), Rate(0), Rate(0), Rate(0), 0);

    /// <summary>
    /// What the hooks add at <see cref="Site"/>, read off one forward pass: the capture hook runs after the steering
    /// hook, so steered minus clean is the added vector (at position 0 of row 0).
    /// </summary>
    sealed class AddedVectorProbe(LlamaForCausalLM model) : IDisposable
    {
        readonly Tensor clean = ActivationCapture.Run(model, Ids, [Site])[Site].DetachFromDisposeScope();

        public Tensor Added()
        {
            using var scope = NewDisposeScope();
            return (ActivationCapture.Run(model, Ids, [Site])[Site] - clean)[0, 0].MoveToOuterDisposeScope();
        }

        public void Dispose() => clean.Dispose();
    }

    [Fact]
    public void SweepRunsASameNormRandomControlPerAlphaInOrder()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var scope = NewDisposeScope();
        using var probe = new AddedVectorProbe(model);
        var direction = randn(32);
        var unit = direction / direction.norm();
        var seen = new List<(double Norm, double Cosine)>();
        EvalReport Evaluate(LlamaForCausalLM m)
        {
            using var s = NewDisposeScope();
            var added = probe.Added();
            double norm = added.norm().item<float>();
            double cos = norm == 0 ? 0 : (added.dot(unit) / norm).item<float>();
            seen.Add((norm, cos));
            return Report(misaligned: Math.Max(0, cos), coherent: 1);
        }
        double[] alphas = [2, 0.5, 1];
        var scale = SteeringScale.OfMedianNorm(3);
        var rows = SteeringSweep.Run(model, Site, direction, alphas, Evaluate, new SteeringOptions { Scale = scale, Seed = 7 });

        Assert.Equal(alphas, rows.Select(r => r.Alpha));
        Assert.Equal(6, seen.Count);
        for (int i = 0; i < alphas.Length; i++)
        {
            var (steered, control) = (seen[2 * i], seen[2 * i + 1]);
            Assert.Equal(alphas[i] * 3, rows[i].VectorNorm, 1e-4);
            Assert.Equal(rows[i].VectorNorm, rows[i].ControlNorm, 1e-4);
            Assert.Equal(steered.Norm, control.Norm, 1e-4);            // what the model saw, not just what we meant to add
            Assert.Equal(1.0, steered.Cosine, 1e-4);
            Assert.True(Math.Abs(control.Cosine) < 0.9, $"control direction at α={alphas[i]} is too close to the steering direction");
            Assert.Equal(1.0, rows[i].Misaligned.Rate, 1e-4);
            Assert.Equal(Math.Max(0, control.Cosine), rows[i].ControlMisaligned.Rate, 1e-6);
        }
        // The controls differ between strengths (seeded per α), and a rerun reproduces them.
        Assert.NotEqual(seen[1].Cosine, seen[3].Cosine);
        seen.Clear();
        SteeringSweep.Run(model, Site, direction, [2.0], Evaluate, new SteeringOptions { Scale = scale, Seed = 7 });
        Assert.Equal(rows[0].ControlMisaligned.Rate, Math.Max(0, seen[1].Cosine), 1e-6);
        Assert.False(model.Hooks.Any);

        var frame = SteeringSweep.ToFrame(rows);
        Assert.Equal(3, frame.RowCount);
        Assert.Contains("ControlMisaligned", frame.ColumnKeys);
    }

    static (double? Alpha, List<double> Asked) Search(AlphaSearch search, Func<double, bool> acceptable)
    {
        var asked = new List<double>();
        var alpha = search.Find(a => { asked.Add(a); return acceptable(a); });
        return (alpha, asked);
    }

    [Fact]
    public void GridSearchPicksTheLargestAcceptableAlphaEvenPastAFailure()
    {
        Assert.Equal(2.0, Search(AlphaSearch.Grid(4, 0.5, 1, 2, 8), a => a <= 2.5).Alpha);
        // Non-monotone: 1 fails but 4 passes; the grid sees every value.
        var (alpha, asked) = Search(AlphaSearch.Grid(0.5, 1, 2, 4, 8), a => a != 1 && a < 5);
        Assert.Equal(4.0, alpha);
        Assert.Equal([0.5, 1, 2, 4, 8], asked);
        Assert.Null(Search(AlphaSearch.Grid(1, 2), _ => false).Alpha);
        Assert.Throws<ArgumentException>(() => AlphaSearch.Grid(-1, 2).Find(_ => true));
    }

    [Fact]
    public void UpwardSearchStopsAtTheFirstFailureAndAtTheBound()
    {
        var (alpha, asked) = Search(AlphaSearch.Upward(0.5, 0.5, 10), a => a <= 2.2);
        Assert.Equal(2.0, alpha);
        Assert.Equal([0.5, 1, 1.5, 2, 2.5], asked);
        // Non-monotone: 1.5 fails, so 2 and 2.5 are never tried.
        (alpha, asked) = Search(AlphaSearch.Upward(0.5, 0.5, 10), a => a != 1.5);
        Assert.Equal(1.0, alpha);
        Assert.Equal(3, asked.Count);
        // Everything acceptable: stops at the bound (0.1 steps, no drift past 1 by rounding).
        (alpha, asked) = Search(AlphaSearch.Upward(0, 0.1, 1), _ => true);
        Assert.Equal(1.0, alpha!.Value, 1e-12);
        Assert.Equal(11, asked.Count);
        Assert.All(asked, a => Assert.True(a <= 1 + 1e-12));
    }

    [Fact]
    public void BisectionConvergesOnTheThresholdAndRespectsTheBounds()
    {
        var (alpha, asked) = Search(AlphaSearch.Bisection(0, 8, iterations: 10), a => a <= 3.3);
        Assert.InRange(alpha!.Value, 3.3 - 8.0 / 1024, 3.3);
        Assert.Equal(12, asked.Count);
        // High end acceptable: returned at once, never past the bound.
        (alpha, asked) = Search(AlphaSearch.Bisection(0, 8), _ => true);
        Assert.Equal(8.0, alpha);
        Assert.Equal([8.0], asked);
        Assert.Null(Search(AlphaSearch.Bisection(1, 8), _ => false).Alpha);
        // Non-monotone (a hole above the threshold): bisection still returns an acceptable α.
        (alpha, _) = Search(AlphaSearch.Bisection(0, 8, iterations: 8), a => a <= 5 && !(a > 3.9 && a < 4.1));
        Assert.True(alpha <= 5 && !(alpha > 3.9 && alpha < 4.1));
    }

    [Fact]
    public void ScreenChoosesTheStrongestCoherentAlphaAndRunsTheControlThere()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var sae = new SparseAutoencoder(new SaeConfig { DIn = 32, DSae = 8, K = 2, Architecture = SaeArchitecture.TopK, Metadata = new SaeMetadata { HookName = Site } }, seed: 5);
        using var scope = NewDisposeScope();
        using var probe = new AddedVectorProbe(model);
        const double reference = 4;
        int current = -1;
        EvalReport Evaluate(LlamaForCausalLM m)
        {
            using var s = NewDisposeScope();
            var added = probe.Added();
            var row = Steer.DecoderRow(sae, current);
            double norm = added.norm().item<float>();
            double alpha = norm / reference;
            double cos = (added.dot(row) / (norm * row.norm())).item<float>();
            // Coherence falls with α (8 % incoherent at α = 2, 12 % at 3); misalignment follows the signed cosine with the latent.
            return Report(misaligned: Math.Clamp(0.5 + 0.4 * cos, 0, 1), coherent: Math.Max(0, 1 - 0.04 * alpha));
        }
        var results = new List<LatentScreenResult>();
        foreach (var latent in new[] { 3, 6 })
        {
            current = latent;
            results.AddRange(LatentScreen.Run(model, sae, Site, [latent], _ => SteeringScale.OfMaxActivation(reference), Evaluate,
                new ScreenOptions { Search = AlphaSearch.Grid(0.5, 1, 2, 3, 4), Sign = -1, Seed = 1 }));
        }
        foreach (var r in results)
        {
            Assert.Equal(2.0, r.Alpha);
            Assert.Equal(-1, r.Sign);
            Assert.Equal(5, r.Trials.Count);
            Assert.Equal(-2.0, r.At!.Alpha);
            Assert.Equal(0.92, r.At.Coherent.Rate, 1e-4);
            Assert.Equal(0.1, r.At.Misaligned.Rate, 1e-4);                     // steering against the latent
            Assert.Equal(r.At.VectorNorm, r.At.ControlNorm, 1e-4);
            Assert.Equal(0.92, r.At.ControlCoherent.Rate, 1e-4);               // same norm, so the fake's coherence matches
            Assert.True(r.At.ControlMisaligned.Rate > 0.1 + 1e-3);
            Assert.True(r.MisalignedShift < 0);
        }
        Assert.False(model.Hooks.Any);

        current = 3;
        var none = LatentScreen.Run(model, sae, Site, [3], _ => SteeringScale.OfMaxActivation(reference), Evaluate,
            new ScreenOptions { Search = AlphaSearch.Grid(0.5, 1), MaxIncoherence = 0.01 });
        Assert.Null(none[0].Alpha);
        Assert.Null(none[0].At);

        var frame = LatentScreen.ToFrame([.. results, .. none]);
        Assert.Equal(3, frame.RowCount);
        var alphas = frame.GetColumn<double>("Alpha");
        Assert.Equal(2.0, alphas.Get(0));
        Assert.Equal(2, alphas.ValueCount);                                 // the NaN of "no α" is a missing value to Deedle
        Assert.Throws<ArgumentException>(() => LatentScreen.Run(model, sae, Site, [3], _ => SteeringScale.Raw, Evaluate,
            new ScreenOptions { Search = AlphaSearch.Grid(1), Sign = 2 }));
    }

    static SteeringSweepRow Row(double alpha, double misaligned, double coherent, double controlMisaligned) =>
        new(alpha, Math.Abs(alpha), Math.Abs(alpha), Report(misaligned, coherent), Report(controlMisaligned, coherent));

    [Fact]
    public void StrongestCoherentPicksTheLargestMagnitudeWithinTheCoherenceDrop()
    {
        var unsteered = Report(misaligned: 0.2, coherent: 0.6);
        var rows = new[] { Row(-0.1, 0.18, 0.58, 0.2), Row(-0.2, 0.12, 0.50, 0.21), Row(-0.4, 0.05, 0.24, 0.19) };

        Assert.Equal(-0.2, SteeringSweep.StrongestCoherent(rows, unsteered)!.Alpha);          // a 10-point drop exactly still counts
        Assert.Equal(-0.1, SteeringSweep.StrongestCoherent(rows, unsteered, 0.05)!.Alpha);
        Assert.Null(SteeringSweep.StrongestCoherent(rows, unsteered, 0.01));
        Assert.Equal(-0.4, SteeringSweep.StrongestCoherent(rows, unsteered, 1)!.Alpha);
        Assert.Throws<ArgumentException>(() => SteeringSweep.StrongestCoherent(rows, unsteered, -0.1));
    }

    [Fact]
    public void StrongestRowsCanRequireTheRandomControlToStayPut()
    {
        var unsteered = Report(misaligned: 0.1, coherent: 0.9);
        // Control shifts 0.00 / 0.04 / 0.20; coherence 0.88 / 0.82 / 0.81.
        var rows = new[] { Row(0.5, 0.2, 0.88, 0.10), Row(1.0, 0.5, 0.82, 0.14), Row(1.5, 0.6, 0.81, 0.30) };

        Assert.Equal(1.5, SteeringSweep.StrongestAbove(rows, unsteered, 0.80)!.Alpha);
        Assert.Equal(1.0, SteeringSweep.StrongestAbove(rows, unsteered, 0.80, maxControlShift: 0.05)!.Alpha);
        Assert.Equal(0.5, SteeringSweep.StrongestAbove(rows, unsteered, 0.80, maxControlShift: 0.03)!.Alpha);
        Assert.Equal(0.5, SteeringSweep.StrongestAbove(rows, unsteered, 0.85)!.Alpha);
        Assert.Null(SteeringSweep.StrongestAbove(rows, unsteered, 0.95));
        Assert.Equal(1.0, SteeringSweep.StrongestCoherent(rows, unsteered, 0.10, maxControlShift: 0.05)!.Alpha);
        Assert.Throws<ArgumentException>(() => SteeringSweep.StrongestAbove(rows, unsteered, 1.2));
        Assert.Throws<ArgumentException>(() => SteeringSweep.StrongestCoherent(rows, unsteered, 0.10, maxControlShift: -1));
    }

    [Fact]
    public void MaxControlShiftIsTheLargestAbsoluteMoveOfTheRandomControl()
    {
        var unsteered = Report(misaligned: 0.2, coherent: 0.6);
        var rows = new[] { Row(0.1, 0.5, 0.6, 0.23), Row(0.2, 0.9, 0.6, 0.15), Row(0.4, 0.9, 0.6, 0.19) };

        Assert.Equal(0.05, SteeringSweep.MaxControlShift(rows, unsteered), 1e-12);            // the steered rates play no part
        Assert.Equal(0.0, SteeringSweep.MaxControlShift(rows, unsteered, r => r.Coherent), 1e-12);
        Assert.Throws<ArgumentException>(() => SteeringSweep.MaxControlShift([], unsteered));
    }
}
