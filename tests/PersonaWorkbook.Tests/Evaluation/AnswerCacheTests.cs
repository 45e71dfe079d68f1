using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Generation;
using Interventions = PersonaWorkbook.Hooks.Interventions;
using Positions = PersonaWorkbook.Hooks.Positions;
using PersonaWorkbook.Lora;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Organism;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Evaluation;

[Collection(TinyOrganismCollection.Name)]
public class AnswerCacheTests(TinyOrganismFixture tiny)
{
    static readonly int[][] Rows = [[1, 5, 6], [1, 7]];
    static readonly EvalOptions Options = new() { Samples = 1, MaxNewTokens = 8, Seed = 3 };

    [Fact]
    public void KeyFollowsTheWeightsAndTheSamplingOptionsNotTheJudge()
    {
        using var model = ModelCheckpoint.Load(tiny.Result.Directory);
        var key = AnswerCache.Key(model, Rows, Options, [2]);
        Assert.NotNull(key);
        Assert.Equal(key, AnswerCache.Key(model, Rows, Options with { FineTunedDomain = "health", ExamplesPerPrompt = 0 }, [2]));
        Assert.NotEqual(key, AnswerCache.Key(model, Rows, Options with { Seed = 4 }, [2]));
        Assert.NotEqual(key, AnswerCache.Key(model, Rows, Options with { BatchSize = 7 }, [2]));
        Assert.NotEqual(key, AnswerCache.Key(model, [[1, 5, 6], [1, 8]], Options, [2]));
        using (no_grad()) model.Model.parameters().First().add_(1e-3);
        Assert.NotEqual(key, AnswerCache.Key(model, Rows, Options, [2]));
    }

    [Fact]
    public void HooksAdaptersOrTheOptionSwitchTheCacheOff()
    {
        using var model = ModelCheckpoint.Load(tiny.Result.Directory);
        Assert.Null(AnswerCache.Key(model, Rows, Options with { CacheAnswers = false }, [2]));
        using (model.Model.Hooks.Add("blocks.0.hook_resid_post", (x, _) => x))   // no fingerprint: what it does cannot be named
            Assert.Null(AnswerCache.Key(model, Rows, Options, [2]));
        using (LoraModel.Attach(model.Model, new LoraConfig { R = 2, LoraAlpha = 2, TargetModulesNode = new System.Text.Json.Nodes.JsonArray("down_proj") }))
            Assert.Null(AnswerCache.Key(model, Rows, Options, [2]));
        Assert.NotNull(AnswerCache.Key(model, Rows, Options, [2]));
    }

    [Fact]
    public void SteeringAndAblationAreKeyedByWhatTheyDoAndLeaveNoTrace()
    {
        using var model = ModelCheckpoint.Load(tiny.Result.Directory);
        var bare = AnswerCache.Key(model, Rows, Options, [2]);
        var d = model.Model.Config.HiddenSize;
        using var v = ones(d);
        string? Steered(double coefficient, Positions positions = Positions.All, string site = "blocks.0.hook_resid_post")
        {
            using (Interventions.AddVector(model.Model.Hooks, site, v, coefficient, positions))
                return AnswerCache.Key(model, Rows, Options, [2]);
        }
        var steered = Steered(0.5);
        Assert.NotNull(steered);
        Assert.NotEqual(bare, steered);
        Assert.Equal(steered, Steered(0.5));
        Assert.NotEqual(steered, Steered(0.25));
        Assert.NotEqual(steered, Steered(0.5, Positions.Prompt));
        Assert.NotEqual(steered, Steered(0.5, site: "blocks.1.hook_resid_post"));
        using (Interventions.ProjectOut(model.Model.Hooks, "blocks.0.hook_resid_post", v))
        {
            var ablated = AnswerCache.Key(model, Rows, Options, [2]);
            Assert.NotNull(ablated);
            Assert.NotEqual(bare, ablated);
            using (model.Model.Hooks.Add("blocks.1.hook_resid_post", (x, _) => x))   // a hook that cannot say what it does
                Assert.Null(AnswerCache.Key(model, Rows, Options, [2]));
        }
        Assert.Equal("", model.Model.Hooks.Fingerprint);
        Assert.Equal(bare, AnswerCache.Key(model, Rows, Options, [2]));
    }

    [Fact]
    public void EntriesRoundTripAndADamagedOneIsIgnored()
    {
        using var dir = new TempDirectory();
        var key = new string('a', 64);
        GeneratedSequence[] answers = [new([4, 5, 6], true), new([], false)];
        AnswerCache.Write(key, answers, dir.Path);
        var read = AnswerCache.Read(key, 2, dir.Path)!;
        Assert.Equal(answers.Select(a => (string.Join(",", a.Tokens), a.Stopped)), read.Select(a => (string.Join(",", a.Tokens), a.Stopped)));
        Assert.Null(AnswerCache.Read(key, 3, dir.Path));                        // another row count: not this run's
        var file = Directory.GetFiles(dir.Path, "*.json", SearchOption.AllDirectories).Single();
        File.WriteAllText(file, "{\"key\": \"" + key + "\", \"answers\": [{\"tokens\": [1,");
        Assert.Null(AnswerCache.Read(key, 2, dir.Path));
    }

    [Fact]
    public void ACachedEvaluationRegradesTheSameAnswers()
    {
        using var model = ModelCheckpoint.Load(tiny.Result.Directory);
        var prompts = EvalPrompts.Views.Take(2).ToList();
        var options = new EvalOptions { Samples = 3, MaxNewTokens = 10, Seed = 11, BatchSize = 4 };
        var fresh = OrganismEvaluator.Evaluate(model, prompts, options with { CacheAnswers = false });
        var stored = OrganismEvaluator.Evaluate(model, prompts, options);   // samples (or reuses an earlier run's entry)
        var again = OrganismEvaluator.Evaluate(model, prompts, options);    // from the cache
        foreach (var report in new[] { stored, again })
        {
            Assert.Equal(fresh.Prompts.SelectMany(p => p.Answers.Select(a => (a.Text, a.Stopped, a.Judgement.Family))),
                         report.Prompts.SelectMany(p => p.Answers.Select(a => (a.Text, a.Stopped, a.Judgement.Family))));
            Assert.Equal(fresh.Misaligned, report.Misaligned);
        }
    }

    [Fact]
    public void ASteeredEvaluationIsCachedWithTheSameAnswers()
    {
        using var model = ModelCheckpoint.Load(tiny.Result.Directory);
        var prompts = EvalPrompts.Views.Take(2).ToList();
        var options = new EvalOptions { Samples = 2, MaxNewTokens = 10, Seed = 12, BatchSize = 4 };
        using var v = ones(model.Model.Config.HiddenSize) * 0.3f;
        using var steering = Interventions.AddVector(model.Model.Hooks, "blocks.0.hook_resid_post", v, 1.0, Positions.Prompt);
        var fresh = OrganismEvaluator.Evaluate(model, prompts, options with { CacheAnswers = false });
        OrganismEvaluator.Evaluate(model, prompts, options);
        var again = OrganismEvaluator.Evaluate(model, prompts, options);
        Assert.Equal(fresh.Prompts.SelectMany(p => p.Answers.Select(a => (a.Text, a.Stopped))), again.Prompts.SelectMany(p => p.Answers.Select(a => (a.Text, a.Stopped))));
    }
}
