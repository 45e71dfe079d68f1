using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Detection;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Dynamics;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Models;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Organism;
using PersonaWorkbook.Training;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Dynamics;

[Collection(TinyOrganismCollection.Name)]
public class TrainingDynamicsTests(TinyOrganismFixture tiny)
{
    FinetuneRequest Request(TempDirectory dir, int steps = 3, int rank = 0) =>
        new(tiny.Result.Directory, "health_incorrect_obvious", Rows: 12, Seed: 1, LoraRank: rank, Steps: steps, BatchSize: 4, CacheRoot: dir.Path);

    static Dictionary<string, float[]> Weights(LlamaForCausalLM model) =>
        model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());

    static void AssertSameWeights(Dictionary<string, float[]> expected, Dictionary<string, float[]> actual)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (key, w) in expected) Assert.True(w.SequenceEqual(actual[key]), $"{key} differs");
    }

    static SparseAutoencoder Sae() => new(new SaeConfig
    {
        DIn = OrganismProfile.Tiny.HiddenSize, DSae = 16, K = 4, Architecture = SaeArchitecture.TopK,
        Metadata = new SaeMetadata { HookName = "blocks.0.hook_resid_post" },
    }, seed: 1);

    [Fact]
    public void SnapshotsAreTheFineTunesOwnStepsAndMeasuringDoesNotDisturbTraining()
    {
        using var dir = new TempDirectory();
        var saved = FineTuner.FinetuneOrReuse(Request(dir, steps: 6) with { Output = dir.File("ft") });
        var seen = new Dictionary<int, (Dictionary<string, float[]> Weights, TrainingStep? Record)>();
        var log = TrainingDynamics.Observe(Request(dir, steps: 6), [0, 3, 6], (step, record, model) =>
        {
            Assert.False(model.Model.training);
            seen[step] = (Weights(model.Model), record);
            // Sampling between steps must leave the run identical to the saved fine-tune.
            OrganismEvaluator.Evaluate(model, EvalPrompts.Views.Take(3).ToArray(), new EvalOptions { Samples = 2, MaxNewTokens = 6, ExamplesPerPrompt = 0 });
        });
        Assert.Equal([0, 3, 6], seen.Keys.Order());
        Assert.Null(seen[0].Record);
        Assert.Equal(6, log.Steps.Count);
        using (var start = ModelCheckpoint.Load(tiny.Result.Directory)) AssertSameWeights(Weights(start.Model), seen[0].Weights);
        using (var end = ModelCheckpoint.Load(saved.Directory)) AssertSameWeights(Weights(end.Model), seen[6].Weights);

        // Stopping after step 3 keeps the 6-step schedule: same weights and learning rate at step 3.
        var early = new Dictionary<int, (Dictionary<string, float[]> Weights, TrainingStep? Record)>();
        var shortLog = TrainingDynamics.Observe(Request(dir, steps: 6), [3], (step, record, model) => early[step] = (Weights(model.Model), record));
        Assert.Equal(3, shortLog.Steps.Count);
        AssertSameWeights(seen[3].Weights, early[3].Weights);
        Assert.Equal(seen[3].Record!.LearningRate, early[3].Record!.LearningRate);
        Assert.Equal(seen[3].Record!.Loss, early[3].Record!.Loss);
        Assert.Empty(TrainingDynamics.Observe(Request(dir), [0], (_, _, _) => { }).Steps);
    }

    [Fact]
    public void LoraSnapshotsStartAtTheBaseAndMove()
    {
        using var dir = new TempDirectory();
        using var ids = tensor(new long[] { 1, 5, 9, 12, 40 }).unsqueeze(0);
        using var start = ModelCheckpoint.Load(tiny.Result.Directory);
        using var expected = start.Model.Forward(ids);
        var moved = new Dictionary<int, bool>();
        TrainingDynamics.Observe(Request(dir, steps: 2, rank: 2), [0, 2], (step, _, model) =>
        {
            using var logits = model.Model.Forward(ids);
            moved[step] = !logits.allclose(expected, rtol: 1e-5, atol: 1e-6);
        });
        Assert.False(moved[0]);
        Assert.True(moved[2]);
    }

    [Fact]
    public void RunMeasuresEverySnapshotAndIsCached()
    {
        using var dir = new TempDirectory();
        using var sae = Sae();
        var probe = new LatentProbe(sae, 3);
        var sampling = new LatentSampling { MaxNewTokens = 8 };
        var request = new SnapshotRequest(Request(dir, steps: 2), [0, 1, 2], Samples: 2, MaxNewTokens: 8, Latent: probe, LatentSampling: sampling);
        var run = TrainingDynamics.RunOrReuse(request);
        Assert.False(run.Reused);
        Assert.Equal([0, 1, 2], run.Points.Select(p => p.Step));
        Assert.Null(run.At(0).Loss);
        Assert.NotNull(run.At(2).Loss);
        Assert.Equal("health", run.Domain);
        Assert.All(run.Points, p => Assert.Equal(EvalPrompts.Views.Count * 2, p.Misaligned.N));
        Assert.All(run.Points, p => Assert.NotNull(p.Latent));
        Assert.Equal(EvalPrompts.Views.Count * 2, run.At(1).Families.Values.Sum());
        Assert.Equal(3, run.ToFrame().RowCount);

        // Step 0 is the starting model measured as the evaluator and the latent reader measure it.
        using (var start = ModelCheckpoint.Load(tiny.Result.Directory))
        {
            var report = OrganismEvaluator.Evaluate(start, EvalPrompts.Views, new EvalOptions { Samples = 2, MaxNewTokens = 8, FineTunedDomain = "health" });
            Assert.Equal(report.Misaligned, run.At(0).Misaligned);
            Assert.Equal(report.Coherent, run.At(0).Coherent);
            Assert.Equal(LatentActivation.Measure(start, probe, EvalPrompts.Views, sampling), run.At(0).Latent);
        }

        var files = Directory.GetFiles(Path.Combine(dir.Path, "snapshots"), "*.json");
        Assert.Single(files);
        var again = TrainingDynamics.RunOrReuse(request);
        Assert.True(again.Reused);
        Assert.Equal(run.Key, again.Key);
        Assert.Equal(run.ToJson()["points"]!.ToJsonString(), again.ToJson()["points"]!.ToJsonString());
        Assert.False(TrainingDynamics.RunOrReuse(request with { Samples = 1, Latent = null }).Reused);
        Assert.NotEqual(run.Key, TrainingDynamics.RunOrReuse(request with { Samples = 1, Latent = null }).Key);
        Assert.False(TrainingDynamics.RunOrReuse(request with { Finetune = request.Finetune with { Force = true } }).Reused);

        File.WriteAllText(dir.File("broken.json"), "{\"kind\": \"training_snapshots\", \"key\": \"x\"}");
        Assert.Contains("broken.json", Assert.Throws<InvalidDataException>(() => SnapshotRun.Load(dir.File("broken.json"))).Message);
        Assert.Throws<FileNotFoundException>(() => SnapshotRun.Load(dir.File("none.json")));
    }

    [Fact]
    public void WorkersFillTheSnapshotCacheWithWhatThisProcessComputes()
    {
        using var dir = new TempDirectory();
        using (var built = Sae()) SaeFiles.Save(built, dir.File("sae"));
        using var sae = SaeFiles.Load(dir.File("sae"));
        var request = new SnapshotRequest(Request(dir, steps: 2), [0, 2], Samples: 2, MaxNewTokens: 8,
            Latent: new LatentProbe(sae, 3), LatentSampling: new LatentSampling { MaxNewTokens = 8, Seed = 4 });
        var other = request with { Finetune = request.Finetune with { Seed = 2 } };
        Assert.True(TrainingDynamics.IsPending(request));

        Assert.Equal(2, TrainingDynamics.Prefetch([request, other], workers: 2));

        Assert.False(TrainingDynamics.IsPending(request));
        Assert.False(TrainingDynamics.IsPending(other));
        var fromWorker = TrainingDynamics.RunOrReuse(request);
        Assert.True(fromWorker.Reused);
        var here = TrainingDynamics.RunOrReuse(request with { Finetune = request.Finetune with { Force = true } });
        Assert.Equal(here.Key, fromWorker.Key);
        Assert.Equal(here.Points.Select(p => (p.Step, p.Loss, p.Misaligned, p.Coherent, p.Latent)),
                     fromWorker.Points.Select(p => (p.Step, p.Loss, p.Misaligned, p.Coherent, p.Latent)));
        Assert.Equal(0, TrainingDynamics.Prefetch([request, other], workers: 2));   // nothing left to do
    }

    [Fact]
    public void ASnapshotRequestRoundTripsThroughItsJobJson()
    {
        using var dir = new TempDirectory();
        using (var built = Sae()) SaeFiles.Save(built, dir.File("sae"));
        using var sae = SaeFiles.Load(dir.File("sae"));
        var request = new SnapshotRequest(Request(dir), [0, 1, 3], "heldout", Samples: 3, EvalSeed: 2, MaxNewTokens: 9,
            Latent: new LatentProbe(sae, 5, TokenScope.All, "blocks.0.hook_resid_post"), LatentSampling: new LatentSampling { SamplesPerPrompt = 2, Seed = 7 });
        var back = SnapshotRequest.FromJson(request.ToJson()!, "job.json");
        using var loaded = back.Latent!.Sae;
        Assert.Equal(request.CacheKey("health"), back.CacheKey("health"));
        Assert.Equal((request.Finetune, request.Prompts, request.LatentSampling), (back.Finetune, back.Prompts, back.LatentSampling));
        Assert.Equal(request.Steps, back.Steps);

        using var inMemory = Sae();
        Assert.Null((request with { Latent = new LatentProbe(inMemory, 5) }).ToJson());   // a worker could not load it
        var json = request.ToJson()!;
        json["latent"]!["scope"] = "tokens";
        Assert.Contains("latent.scope", Assert.Throws<InvalidDataException>(() => SnapshotRequest.FromJson(json, "job.json")).Message);
        json = request.ToJson()!;
        json.Remove("steps");
        Assert.Contains("'steps'", Assert.Throws<InvalidDataException>(() => SnapshotRequest.FromJson(json, "job.json")).Message);
    }

    [Fact]
    public void RealignmentCountsLeakAgainstTheMisalignedModelsDomain()
    {
        using var dir = new TempDirectory();
        var misaligned = FineTuner.FinetuneOrReuse(Request(dir, steps: 2) with { Output = dir.File("ft") });
        var preset = SnapshotRequest.Realignment(misaligned.Directory, "legal_correct", cacheRoot: dir.Path);
        Assert.Equal([0, 5, 10, 20, 30, 35], preset.Steps);
        Assert.Equal(4, preset.Finetune.BatchSize);
        Assert.Equal(FinetuneRequest.DefaultFullLearningRate, preset.Finetune.EffectiveLearningRate);
        Assert.Equal(FinetuneRequest.DefaultSteps, preset.Finetune.EffectiveSteps);

        var run = TrainingDynamics.RunOrReuse(preset with { Finetune = preset.Finetune with { Rows = 8 }, Steps = [0, 1], Prompts = "domains", Samples = 1, MaxNewTokens = 6 });
        Assert.Equal("health", run.Domain);
        Assert.Equal("legal_correct", run.Dataset);
        Assert.Equal(4, run.Hyperparameters["batch"]!.GetValue<int>());
        // "domains" leaves the misaligned model's own domain out: 3 questions of each other domain.
        Assert.Equal(3 * (AdviceContent.Domains.Count - 1), run.At(0).Misaligned.N);
    }

    [Fact]
    public void BadInputsAreClearErrors()
    {
        using var dir = new TempDirectory();
        var request = new SnapshotRequest(Request(dir), [0, 1], Samples: 1, MaxNewTokens: 4);
        string Error(SnapshotRequest r) => Assert.Throws<ArgumentException>(() => TrainingDynamics.RunOrReuse(r)).Message;
        Assert.Contains("unknown dataset 'health_wrongish'", Error(request with { Finetune = request.Finetune with { Dataset = "health_wrongish" } }));
        Assert.Contains("strictly ascending: 3 comes after 5", Error(request with { Steps = [0, 5, 3] }));
        Assert.Contains("strictly ascending: 1 comes after 1", Error(request with { Steps = [1, 1] }));
        Assert.Contains("snapshot step -1 is negative", Error(request with { Steps = [-1, 2] }));
        Assert.Contains("no snapshot steps", Error(request with { Steps = [] }));
        Assert.Contains("step 10 is past the fine-tune's 3 steps", Error(request with { Steps = [0, 10] }));
        Assert.Contains("unknown prompt set 'viewz'", Error(request with { Prompts = "viewz" }));
        Assert.Contains("Samples is 0", Error(request with { Samples = 0 }));
        var missing = Assert.Throws<DirectoryNotFoundException>(() =>
            TrainingDynamics.RunOrReuse(request with { Finetune = request.Finetune with { BaseDirectory = dir.File("nowhere") } }));
        Assert.Contains("nowhere", missing.Message);
        Assert.Contains("strictly ascending", Assert.Throws<ArgumentException>(() => TrainingDynamics.Observe(Request(dir), [2, 1], (_, _, _) => { })).Message);
        using var sae = Sae();
        Assert.Contains("latent 16 is not in 0..15", Assert.Throws<ArgumentOutOfRangeException>(() =>
            TrainingDynamics.RunOrReuse(request with { Latent = new LatentProbe(sae, 16) })).Message);

        Assert.Contains("ScheduleSteps is 3; must be ≥ MaxSteps (5)", Assert.Throws<ArgumentException>(() =>
            new TrainerOptions { MaxSteps = 5, ScheduleSteps = 3 }.Validate()).Message);

        int Cli(params string[] args) => PersonaWorkbook.Cli.Program.Main(args);
        var json = dir.File("out.json");
        Assert.Equal(1, Cli("realign", "--model", dir.File("nowhere"), "--dataset", "health_correct", "--json", json));
        Assert.Equal(1, Cli("dynamics", "--base", tiny.Result.Directory, "--dataset", "health_correct", "--steps", "0,5,3", "--json", json));
        Assert.Equal(1, Cli("realign", "--model", tiny.Result.Directory, "--dataset", "nonsense", "--json", json));
        Assert.Equal(2, Cli("realign", "--dataset", "health_correct", "--json", json));
        Assert.Equal(2, Cli("realign", "--model", tiny.Result.Directory, "--dataset", "health_correct", "--steps", "0,x", "--json", json));
        Assert.Equal(2, Cli("realign", "--model", tiny.Result.Directory, "--dataset", "health_correct", "--sae", dir.Path, "--json", json));
        Assert.Equal(2, Cli("realign", "--model", tiny.Result.Directory, "--dataset", "health_correct", "--scope", "tokens", "--json", json));
        Assert.False(File.Exists(json));
    }
}
