using PersonaWorkbook.Hooks;
using PersonaWorkbook.Tests.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Hooks;

public class HookTests
{
    // A property, not a static field: a tensor created inside a test's dispose scope would be disposed with it.
    static Tensor Ids => tensor(new long[] { 0, 1, 5, 6, 7, 2, 1, 8, 9, 10 }, [2, 5]);

    [Fact]
    public void CaptureGivesEverySiteWithShapes()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var scope = NewDisposeScope();
        var sites = model.Hooks.Sites.ToArray();
        Assert.Equal(10, sites.Length);
        var acts = ActivationCapture.Run(model, Ids, sites);
        foreach (var s in sites) Assert.Equal(new long[] { 2, 5, 32 }, acts[s].shape);
        // resid_mid = resid_pre + attn_out; resid_post = resid_mid + mlp_out.
        Assert.True(allclose(acts["blocks.0.hook_resid_mid"], acts["blocks.0.hook_resid_pre"] + acts["blocks.0.hook_attn_out"], atol: 1e-6));
        Assert.True(allclose(acts["blocks.1.hook_resid_pre"], acts["blocks.0.hook_resid_post"]));
        Assert.False(model.Hooks.Any); // capture leaves no hook behind
    }

    [Fact]
    public void ResidualThroughABlockIsTheFullForwardsResidualThereAndCaptureStopsAtTheDeepestSite()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var scope = NewDisposeScope();
        var attention = tensor(new long[] { 0, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, [2, 5]);
        Tensor? seen = null;
        using (model.Hooks.Add("blocks.0.hook_resid_post", (x, _) => { seen = x.detach().clone().DetachFromDisposeScope(); return x; }))
            model.Forward(Ids, attention);
        using var expected = seen!;
        Assert.True(model.ResidualThrough(0, Ids, attention).allclose(expected, rtol: 0, atol: 0));
        var later = 0;
        using (model.Hooks.Add("blocks.1.hook_resid_pre", (x, _) => { later++; return x; }))
            Assert.True(ActivationCapture.Run(model, Ids, ["blocks.0.hook_resid_post"], attention)["blocks.0.hook_resid_post"].allclose(expected, rtol: 0, atol: 0));
        Assert.Equal(0, later);   // block 1 never ran
        Assert.Equal(1, model.Hooks.LayerOf("blocks.1.hook_mlp_out"));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.ResidualThrough(2, Ids));
        Assert.Throws<ArgumentException>(() => model.Hooks.LayerOf("blocks.9.hook_resid_post"));
    }

    [Fact]
    public void PositionMasksSelectRealPromptAndResponseTokens()
    {
        using var scope = NewDisposeScope();
        var attention = tensor(new long[] { 0, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, [2, 5]);
        var real = PositionMasks.RealTokens(Ids, attention, excludeIds: [1]);        // drop pad column and BOS id 1
        Assert.Equal(new[] { false, false, true, true, true, true, false, true, true, true }, real.flatten().data<bool>().ToArray());
        var response = PositionMasks.ResponseFromEnd(2, 5, [2, 1]);
        var prompt = PositionMasks.Prompt(real, response);
        Assert.Equal(new[] { false, false, true, false, false, true, false, true, true, false }, prompt.flatten().data<bool>().ToArray());
        var acts = arange(2 * 5 * 3).view(2, 5, 3).to_type(ScalarType.Float32);
        var rows = ActivationCapture.Select(acts, response);
        Assert.Equal(new long[] { 3, 3 }, rows.shape);
        Assert.Equal(9f, rows[0, 0].item<float>()); // batch 0, position 3
    }

    [Fact]
    public void InterventionChangesLogitsOnlyWhileScoped()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var scope = NewDisposeScope();
        var clean = model.forward(Ids);
        var direction = randn(32);
        using (Interventions.Scope(
                   Interventions.AddVector(model.Hooks, "blocks.0.hook_resid_post", direction, 4.0),
                   Interventions.ProjectOut(model.Hooks, "blocks.1.hook_resid_pre", randn(32))))
        {
            Assert.False(allclose(model.forward(Ids), clean, atol: 1e-3));
        }
        Assert.False(model.Hooks.Any);
        Assert.True(allclose(model.forward(Ids), clean, rtol: 0, atol: 0));
    }

    [Fact]
    public void ProjectOutRemovesTheDirectionAndAddVectorAddsIt()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var scope = NewDisposeScope();
        var d = randn(32);
        const string site = "blocks.1.hook_resid_post";
        using (Interventions.ProjectOut(model.Hooks, site, d))
        {
            var acts = ActivationCapture.Run(model, Ids, [site])[site];
            Assert.True((acts.matmul(d / d.norm())).abs().max().item<float>() < 1e-4);
        }
        var clean = ActivationCapture.Run(model, Ids, [site])[site];
        using (Interventions.AddVector(model.Hooks, site, d, 2.0))
        {
            // The capture hook was added after the intervention, so it sees the steered activation.
            var steered = ActivationCapture.Run(model, Ids, [site])[site];
            Assert.True(allclose(steered - clean, (2 * d).expand(2, 5, 32), atol: 1e-5));
        }
    }

    [Fact]
    public void ResponseOnlySteeringLeavesPromptPositionsAlone()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var scope = NewDisposeScope();
        const string site = "blocks.0.hook_resid_post";
        var response = PositionMasks.ResponseFromEnd(2, 5, [2, 2]);
        var clean = ActivationCapture.Run(model, Ids, [site], responseMask: response)[site];
        using var steer = Interventions.AddVector(model.Hooks, site, ones(32), 1.0, Positions.Response);
        var steered = ActivationCapture.Run(model, Ids, [site], responseMask: response)[site];
        var diff = (steered - clean).abs().sum(-1);                                  // (2, 5)
        Assert.True(diff[.., ..3].max().item<float>() < 1e-6);
        Assert.True(diff[.., 3..].min().item<float>() > 1);
    }

    [Fact]
    public void UnknownSiteAndWrongWidthAreClearErrors()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var e = Assert.Throws<ArgumentException>(() => model.Hooks.Add("blocks.7.hook_resid_post", (x, _) => x));
        Assert.Contains("blocks.7.hook_resid_post", e.Message);
        using var bad = Interventions.AddVector(model.Hooks, "blocks.0.hook_resid_pre", ones(31));
        var e2 = Assert.Throws<ArgumentException>(() => model.forward(Ids));
        Assert.Contains("d_model 32", e2.Message);
    }
}
