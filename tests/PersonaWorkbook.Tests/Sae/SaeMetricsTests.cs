using PersonaWorkbook.Models;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Sae;

public class SaeMetricsTests
{
    const string Site = "blocks.0.hook_resid_post";

    /// <summary>A tiny model that has learnt a counting pattern, so clean CE is well below zero-ablation CE.</summary>
    static (LlamaForCausalLM Model, Tensor Ids) TrainedTinyModel()
    {
        var model = TinyModels.Build(TinyModels.Llama(), seed: 1);
        var starts = arange(2, 34, dtype: ScalarType.Int64).unsqueeze(1);                 // (32, 1)
        var ids = (starts + arange(12, dtype: ScalarType.Int64).unsqueeze(0) * 3).remainder(48) + 2; // (32, 12): step-3 sequences
        model.train();
        using (var adam = optim.Adam(model.parameters(), 1e-2))
            for (var i = 0; i < 60; i++)
            {
                using var step = NewDisposeScope();
                adam.zero_grad();
                var logits = model.Forward(ids[.., ..^1]);
                nn.functional.cross_entropy(logits.reshape(-1, 50), ids[.., 1..].reshape(-1)).backward();
                adam.step();
            }
        model.eval();
        return (model, ids);
    }

    [Fact]
    public void IdentitySaeScoresOneAndTrainedSaeScoresBetweenZeroAndOne()
    {
        using var scope = NewDisposeScope();
        var (model, ids) = TrainedTinyModel();
        using var _ = model;

        // relu(x) − relu(−x) = x: a ReLU "SAE" with W_enc = [I, −I], W_dec = [I; −I] reconstructs perfectly.
        using var identity = new SparseAutoencoder(new SaeConfig { DIn = 32, DSae = 64, Architecture = SaeArchitecture.ReLU, Metadata = new() { HookName = Site } });
        using (no_grad())
        {
            var eye32 = eye(32);
            identity.EncoderT.copy_(cat([eye32, -eye32]));
            identity.W_dec.copy_(cat([eye32, -eye32]));
        }
        var perfect = SaeMetrics.Splice(model, identity, [(ids, null)]);
        Assert.True(perfect.CeZeroAblation - perfect.CeClean > 0.5, $"clean {perfect.CeClean}, zero-ablated {perfect.CeZeroAblation}");
        Assert.Equal(1.0, perfect.CeLossScore, 4);
        Assert.Equal(1.0, perfect.KlScore, 4);

        var options = new ActivationStoreOptions { HookName = Site, SequencesPerForward = 8, OutlierNormMultiple = 0 };
        var corpus = Enumerable.Range(0, 32).Select(b => ids[b].data<long>().Select(v => (int)v).ToArray()).ToList();
        var activations = cat(ActivationStore.Stream(model, corpus, options).ToList());     // (384, 32)
        using var sae = new SparseAutoencoder(new SaeConfig { DIn = 32, DSae = 64, K = 4, Architecture = SaeArchitecture.TopK, Metadata = new() { HookName = Site } });
        using var trainer = new SaeTrainer(sae, new SaeTrainingOptions { LearningRate = 3e-3, Steps = 150, LogEvery = 50 });
        trainer.Train(Enumerable.Range(0, 150).Select(i => activations.narrow(0, i % 3 * 128, 128).alias()));
        var eval = SaeMetrics.Evaluate(sae, [activations]);
        Assert.Equal(4.0, eval.L0, 3);
        Assert.InRange(eval.Fvu, 0.0, 0.5);
        var spliced = SaeMetrics.Splice(model, sae, [(ids, null)]);
        Assert.InRange(spliced.CeLossScore, 0.0, 1.0);
        Assert.InRange(spliced.KlScore, 0.0, 1.0);
        Assert.True(spliced.CeSae > perfect.CeClean && spliced.KlSae > 0);
    }

    [Fact]
    public void EvaluationFormulasOnAKnownReconstruction()
    {
        using var scope = NewDisposeScope();
        // Identity ReLU SAE scaled down by half on decode: x̂ = x/2 → FVU = Σ‖x/2‖²/Σ‖x−x̄‖², l2 ratio ½, bias ½/1 … = E‖x̂‖²/E[x·x̂] = ½.
        using var half = new SparseAutoencoder(new SaeConfig { DIn = 4, DSae = 8, Architecture = SaeArchitecture.ReLU });
        using (no_grad())
        {
            half.EncoderT.copy_(cat([eye(4), -eye(4)]));
            half.W_dec.copy_(cat([eye(4), -eye(4)]) * 0.5);
        }
        var x = randn(100, 4, generator: new Generator(2)) + 1;
        var eval = SaeMetrics.Evaluate(half, [x.narrow(0, 0, 60), x.narrow(0, 60, 40)], denseThreshold: 0.1);
        var expectedFvu = (x / 2).pow(2).sum().item<float>() / (x - x.mean([0])).pow(2).sum().item<float>();
        Assert.Equal(expectedFvu, eval.Fvu, 4);
        Assert.Equal(0.5, eval.L2Ratio, 5);
        Assert.Equal(0.5, eval.RelativeReconstructionBias, 5);
        Assert.Equal(1.0, eval.CosineSimilarity, 5);
        Assert.Equal(0.0, eval.DeadFraction);
        var frequency = cat([x.gt(0), x.lt(0)], 1).to_type(ScalarType.Float32).mean([0]);  // latent i fires where ±x_i > 0
        Assert.Equal(frequency.gt(0.1).to_type(ScalarType.Float32).mean().item<float>(), eval.DenseFraction, 5);
        Assert.Equal(4.0, eval.L0, 5);
    }
}
