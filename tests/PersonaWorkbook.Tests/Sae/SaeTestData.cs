using PersonaWorkbook.Sae;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Sae;

static class SaeTestData
{
    public static SparseAutoencoder TopK(int dIn = 8, int dSae = 32, int k = 4, long seed = 0, SaeArchitecture arch = SaeArchitecture.TopK) =>
        new(new SaeConfig { DIn = dIn, DSae = dSae, K = k, Architecture = arch, Metadata = new SaeMetadata { HookName = "blocks.0.hook_resid_post" } }, seed: seed);

    /// <summary>x = Σ (a few of) n unit ground-truth directions with positive magnitudes, plus a little noise; returns (x, directions).</summary>
    public static (Tensor X, Tensor Directions) SparseMixture(int tokens, int dIn, int nDirections, double activeProbability, long seed, Tensor? directions = null, double noise = 0.01)
    {
        var g = new Generator((ulong)seed);
        directions ??= Normalised(randn(nDirections, dIn, generator: g));
        var active = rand(tokens, nDirections, generator: g).lt(activeProbability).to_type(ScalarType.Float32);
        var magnitudes = rand(tokens, nDirections, generator: g) + 1;                   // (N, n) in [1, 2)
        var x = (active * magnitudes).matmul(directions) + noise * randn(tokens, dIn, generator: g) + 3.0; // offset: b_dec has work to do
        return (x, directions);
    }

    public static Tensor Normalised(Tensor rows) => rows / rows.norm(1, keepdim: true);
}
