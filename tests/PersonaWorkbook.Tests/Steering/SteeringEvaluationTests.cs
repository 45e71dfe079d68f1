using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Steering;
using PersonaWorkbook.Tests.Organism;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Steering;

/// <summary>The sweep through the real evaluator: steering reaches the sampled answers, and α = 0 changes nothing.</summary>
[Collection(TinyOrganismCollection.Name)]
public class SteeringEvaluationTests(TinyOrganismFixture tiny)
{
    [Fact]
    public void SweepWithTheOrganismEvaluatorSteersTheSampledAnswers()
    {
        using var model = ModelCheckpoint.Load(tiny.Result.Directory);
        using var scope = NewDisposeScope();
        var prompts = EvalPrompts.Views.Take(1).ToList();
        var options = new EvalOptions { Samples = 2, MaxNewTokens = 8, Seed = 3 };
        var clean = OrganismEvaluator.Evaluate(model, prompts, options);
        // Its own generator: the global one is shared with test classes running in parallel.
        using var generator = new Generator(11);
        var direction = randn(model.Config.HiddenSize, generator: generator);
        var rows = SteeringSweep.Run(model, "blocks.0.hook_resid_post", direction, [0.0, 200.0], prompts, options);

        string[] Texts(EvalReport r) => r.Prompts.SelectMany(p => p.Answers.Select(a => a.Text)).ToArray();
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r => Assert.Equal(2, r.Report.N));
        Assert.Equal(Texts(clean), Texts(rows[0].Report));
        Assert.Equal(Texts(clean), Texts(rows[0].Control));                  // a zero-norm control is no steering either
        Assert.NotEqual(Texts(clean), Texts(rows[1].Report));
        Assert.False(model.Model.Hooks.Any);
    }
}
