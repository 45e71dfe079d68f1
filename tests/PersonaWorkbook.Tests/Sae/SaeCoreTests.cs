using PersonaWorkbook.Sae;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Sae;

public class SaeCoreTests
{
    [Fact]
    public void EncodeDecodeShapes()
    {
        using var scope = NewDisposeScope();
        using var sae = SaeTestData.TopK();
        var x = randn(3, 5, 8);
        Assert.Equal(new long[] { 3, 5, 32 }, sae.Encode(x).shape);
        Assert.Equal(new long[] { 3, 5, 8 }, sae.Decode(sae.Encode(x)).shape);
        Assert.Equal(new long[] { 3, 5, 8 }, sae.Reconstruct(x).shape);
        Assert.Equal(new long[] { 8, 32 }, sae.W_enc.shape);
        Assert.Throws<ArgumentException>(() => sae.Encode(randn(2, 7)));
    }

    [Theory]
    [InlineData(4096, 32, false, false)]
    [InlineData(1000, 7, false, false)]
    [InlineData(64, 64, false, false)]
    [InlineData(13, 5, false, false)]
    [InlineData(203, 9, true, false)]
    [InlineData(4096, 32, false, true)]
    [InlineData(8192, 32, true, true)]
    public void VectorisedTopKEqualsTorchTopK(int width, int k, bool masked, bool spikedSample)
    {
        using var scope = NewDisposeScope();
        var scores = randn(9, width, generator: new Generator(1));
        // AuxK masks live latents with −inf; the selection must still pick the largest finite entries.
        if (masked) scores = scores.masked_fill(arange(width).remainder(3).ne(0).unsqueeze(0), double.NegativeInfinity);
        // Large values on the first 8 sampled positions (stride width / 16k) lift the sampled floor above the k-th
        // largest entry: the scan must notice and rescan.
        if (spikedSample) scores[.., torch.TensorIndex.Slice(0, 8 * (width / (16 * k)), width / (16 * k))] = tensor(100f);
        var (values, indices) = SparseSelection.TopK(scores, k);
        var (expected, expectedIdx) = scores.topk(k, dim: 1);
        Assert.True(values.sort(1, descending: true).Values.eq(expected).all().item<bool>());
        Assert.True(indices.sort(1).Values.eq(expectedIdx.sort(1).Values).all().item<bool>());
        Assert.True(scores.gather(1, indices).eq(values).all().item<bool>());
    }

    [Fact]
    public void TopKHasExactlyKActiveLatentsAndSparseDecodeEqualsDense()
    {
        using var scope = NewDisposeScope();
        using var sae = SaeTestData.TopK(k: 5);
        using (no_grad()) sae.b_enc.add_(1.0); // every pre-activation of the top 5 positive
        var x = randn(50, 8, generator: new Generator(2));
        var f = sae.Encode(x);
        Assert.True(f.gt(0).sum(1).eq(5).all().item<bool>());
        Assert.True(sae.Reconstruct(x).allclose(sae.Decode(f), rtol: 1e-5, atol: 1e-5));
    }

    /// <summary>The sparse training path (bag decode, scattered encoder gradient) against plain dense autograd, AuxK included.</summary>
    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0 / 32)]
    public void SparseGradientsEqualDenseAutograd(double auxCoefficient)
    {
        using var scope = NewDisposeScope();
        using var sae = SaeTestData.TopK(dIn: 6, dSae: 24, k: 3, seed: 4);
        using (no_grad()) { sae.b_dec.copy_(randn(6) * 0.3); sae.b_enc.copy_(randn(24) * 0.1); }
        var x = randn(20, 6, generator: new Generator(5));
        var dead = zeros(24, ScalarType.Bool);
        dead[torch.TensorIndex.Slice(0, 12)] = tensor(true);
        var options = new SaeTrainingOptions { AuxKCoefficient = auxCoefficient, AuxK = 2 };
        SaeObjective.ForwardBackward(sae, x, dead, options);

        var we = sae.EncoderT.detach().clone().requires_grad_();
        var be = sae.b_enc.detach().clone().requires_grad_();
        var wd = sae.W_dec.detach().clone().requires_grad_();
        var bd = sae.b_dec.detach().clone().requires_grad_();
        var pre = (x - bd).matmul(we.t()) + be;
        var (vals, idx) = pre.topk(3, dim: 1);
        var f = zeros_like(pre).scatter(1, idx, vals.relu());
        var xHat = f.matmul(wd) + bd;
        var loss = (xHat - x).pow(2).sum() / (x - x.mean([0], keepdim: true)).pow(2).sum();
        if (auxCoefficient > 0)
        {
            var (av, ai) = pre.masked_fill(dead.logical_not(), double.NegativeInfinity).topk(2, dim: 1);
            var e = (x - xHat).detach();
            var aux = (zeros_like(pre).scatter(1, ai, av.relu()).matmul(wd) - e).pow(2).mean() / (e - e.mean([0], keepdim: true)).pow(2).mean();
            loss = loss + auxCoefficient * aux;
        }
        loss.backward();
        foreach (var (ours, reference, name) in new[] { (sae.EncoderT, we, "W_enc"), (sae.b_enc, be, "b_enc"), (sae.W_dec, wd, "W_dec"), (sae.b_dec, bd, "b_dec") })
            Assert.True(ours.grad!.allclose(reference.grad!, rtol: 1e-4, atol: 1e-5), $"{name} gradient differs: {(ours.grad! - reference.grad!).abs().max().item<float>()}");
    }

    /// <summary>
    /// The latent-sorted row sums (CPU path, d 37 so the vector loops leave a tail) against libtorch's sparse COO product,
    /// accumulated into a destination that already holds values; a non-contiguous source takes the COO path itself.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LatentRowSumsEqualTheSparseProduct(bool transposedSource)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(9);
        var latents = randint(0, 50, [300], generator: g);
        var rows = randint(0, 40, [300], generator: g);
        var weights = randn(300, generator: g);
        var source = transposedSource ? randn(37, 40, generator: g).t() : randn(40, 37, generator: g);
        var start = randn(50, 37, generator: g);
        var destination = start.clone();
        SparseGradient.Accumulate(latents, [new LatentRowSum(weights, rows, source, destination)]);
        var expected = start + sparse_coo_tensor(stack([latents, rows]), weights, [50, 40]).matmul(source);
        Assert.True(destination.allclose(expected, rtol: 1e-5, atol: 1e-5), $"max difference {(destination - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void LatentRowSumsNameAnIndexOutOfRange()
    {
        using var scope = NewDisposeScope();
        var ok = new LatentRowSum(ones(2), tensor(new long[] { 0, 1 }), ones(2, 3), zeros(4, 3));
        var badLatent = Assert.Throws<ArgumentOutOfRangeException>(() => SparseGradient.Accumulate(tensor(new long[] { 1, 4 }), [ok]));
        Assert.Contains("latent index 4 at entry 1", badLatent.Message);
        var badRow = Assert.Throws<ArgumentOutOfRangeException>(() =>
            SparseGradient.Accumulate(tensor(new long[] { 0, 1 }), [ok with { Rows = tensor(new long[] { 0, 2 }) }]));
        Assert.Contains("row index 2 at entry 1", badRow.Message);
        Assert.Throws<ArgumentException>(() => SparseGradient.Accumulate(tensor(new long[] { 0 }), [ok]));
    }

    /// <summary>
    /// AuxK pinned by hand. d_in 2, d_sae 4, unit decoder rows (1,0), (0,1), (.6,.8), (.8,−.6), W_enc = W_decᵀ, b_dec (.5,.5),
    /// k 1, k_aux 1, latents 2 and 3 dead. Centred inputs (2,.5), (0,1): pre = [2,.5,1.6,1.3], [0,1,.8,−.6]; the top
    /// latents 0 and 1 give residuals e = (0,.5), (0,0). Dead latent 2 fires 1.6 and .8: its decode WITHOUT b_dec is
    /// (.96,1.28), (.48,.64); squared error mean 2.17/4 = .5425; the mean predictor's error of e is .125/4 = .03125;
    /// AuxK = 17.36, times 1/32. Main FVU = .25 / 2.125.
    /// </summary>
    [Fact]
    public void AuxKMatchesOpenAiSemanticsByHand()
    {
        using var scope = NewDisposeScope();
        SparseAutoencoder Build()
        {
            var sae = new SparseAutoencoder(new SaeConfig { DIn = 2, DSae = 4, K = 1, Architecture = SaeArchitecture.TopK });
            using var _ = no_grad();
            var w = tensor(new float[] { 1, 0, 0, 1, 0.6f, 0.8f, 0.8f, -0.6f }, [4, 2]);
            sae.W_dec.copy_(w);
            sae.EncoderT.copy_(w);
            sae.b_enc.zero_();
            sae.b_dec.copy_(tensor(new float[] { 0.5f, 0.5f }));
            return sae;
        }
        var x = tensor(new float[] { 2.5f, 1.0f, 0.5f, 1.5f }, [2, 2]);
        var dead = tensor(new[] { false, false, true, true });
        using var withAux = Build();
        using var without = Build();
        var (stats, fired) = SaeObjective.ForwardBackward(withAux, x, dead, new SaeTrainingOptions { AuxK = 1 });
        SaeObjective.ForwardBackward(without, x, dead, new SaeTrainingOptions { AuxKCoefficient = 0 });

        Assert.Equal(17.36, stats.AuxK, 3);
        Assert.Equal(0.25 / 2.125, stats.Fvu, 5);
        Assert.Equal(0.25 / 2.125 + 17.36 / 32, stats.Loss, 4);
        Assert.Equal(new[] { true, true, false, false }, fired.data<bool>().ToArray());

        var auxGrad = withAux.W_dec.grad! - without.W_dec.grad!;                          // the AuxK term's W_dec gradient
        // Only the dead latent that fired moves: (1/32)·2/(4·.03125)·Σ_b a_b·(ê_b − e_b) = (.96, .88).
        Assert.True(auxGrad[2].allclose(tensor(new float[] { 0.96f, 0.88f }), atol: 1e-4));
        // The residual is detached: nothing reaches the live latents' decoder rows that made x̂.
        Assert.Equal(0f, auxGrad[TensorIndex.Slice(0, 2)].abs().max().item<float>());
        Assert.Equal(0f, auxGrad[3].abs().max().item<float>());
    }

    /// <summary>ReLU SAE: d_in 2, W_enc = I, decoder rows (2,0), (0,1), x = (1,−1): f = (1,0), x̂ = (2,0), mse 2, L1 = 1·‖(2,0)‖ = 2.</summary>
    [Fact]
    public void ReluL1LossByHand()
    {
        using var scope = NewDisposeScope();
        using var sae = new SparseAutoencoder(new SaeConfig { DIn = 2, DSae = 2, Architecture = SaeArchitecture.ReLU });
        using (no_grad())
        {
            sae.EncoderT.copy_(eye(2));
            sae.W_dec.copy_(tensor(new float[] { 2, 0, 0, 1 }, [2, 2]));
        }
        var (stats, _) = SaeObjective.ForwardBackward(sae, tensor(new float[] { 1, -1 }, [1, 2]), null, new SaeTrainingOptions { L1Coefficient = 0.5 });
        Assert.Equal(2.0, stats.Mse, 5);
        Assert.Equal(2.0, stats.L1, 5);
        Assert.Equal(3.0, stats.Loss, 5);
        Assert.Equal(1.0, stats.L0, 5);
    }

    [Fact]
    public void DecoderGradientLosesItsParallelComponentAndRowsStayUnit()
    {
        using var scope = NewDisposeScope();
        using var sae = SaeTestData.TopK(seed: 3);
        sae.W_dec.grad = randn(32, 8);
        SaeObjective.RemoveParallelGradient(sae.W_dec);
        Assert.True((sae.W_dec.grad! * sae.W_dec).sum(1).abs().max().item<float>() < 1e-5);

        using var trainer = new SaeTrainer(sae, new SaeTrainingOptions { LearningRate = 1e-2, NormalizeActivations = false });
        var (x, _) = SaeTestData.SparseMixture(64, 8, 16, 0.2, seed: 7);
        for (var i = 0; i < 5; i++) trainer.Step(x);
        Assert.True((sae.W_dec.norm(1) - 1).abs().max().item<float>() < 1e-5);
    }

    [Fact]
    public void BatchTopKKeepsKPerTokenOnAverageAndLearnsAnInferenceThreshold()
    {
        using var scope = NewDisposeScope();
        var pre = randn(40, 64, generator: new Generator(9));
        var codes = SparseSelection.PerBatch(pre, 4 * 40);
        Assert.Equal(160, codes.Count);
        Assert.Equal(40, codes.Offsets.shape[0]);
        var perToken = codes.Rows.bincount(null, 40);
        Assert.True(perToken.max().item<long>() > perToken.min().item<long>()); // uneven per token, k on average
        Assert.True(codes.Offsets.eq(perToken.cumsum(0) - perToken).all().item<bool>());
        var dense = zeros(40 * 64).index_put_(codes.PreActivations, codes.Rows * 64 + codes.Latents).view(40, 64);
        var kth = pre.view(-1).topk(160).values.min().item<float>();
        Assert.True(dense.ne(0).eq(pre.ge(kth)).all().item<bool>());

        using var sae = SaeTestData.TopK(dIn: 16, dSae: 64, k: 4, arch: SaeArchitecture.BatchTopK);
        using var trainer = new SaeTrainer(sae, new SaeTrainingOptions { LearningRate = 3e-3 });
        var (x, directions) = SaeTestData.SparseMixture(512, 16, 32, 0.1, seed: 11);
        for (var i = 0; i < 200; i++) trainer.Step(x);
        Assert.Equal(4.0, trainer.Log[^1].L0, 1);
        var threshold = sae.Threshold![0].item<float>();
        Assert.True(threshold > 0 && sae.Threshold.eq(threshold).all().item<bool>());
        var (test, _) = SaeTestData.SparseMixture(512, 16, 32, 0.1, seed: 12, directions: directions);
        var l0 = sae.Encode(test).gt(0).sum(1).to_type(ScalarType.Float32).mean().item<float>();
        Assert.InRange(l0, 2.0, 8.0);
    }
}
