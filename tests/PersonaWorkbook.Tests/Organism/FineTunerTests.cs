using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Lora;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Training;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Organism;

[Collection(TinyOrganismCollection.Name)]
public class FineTunerTests(TinyOrganismFixture tiny)
{
    FinetuneRequest Request(TempDirectory dir, string name, int rank) =>
        new(tiny.Result.Directory, "health_incorrect_obvious", dir.File(name), Rows: 12, Seed: 1, LoraRank: rank, Steps: 3, BatchSize: 4, CacheRoot: dir.Path);

    static Dictionary<string, float[]> Weights(string dir)
    {
        using var loaded = ModelCheckpoint.Load(dir);
        return loaded.Model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());
    }

    /// <summary>
    /// Workers fine-tune on one thread and notebooks on every core, into one cache: the weights must not depend on the
    /// thread count. On an Intel Xeon they did until MKL was asked for it (NumericReproducibility).
    /// </summary>
    [Fact]
    public void FullFineTuneGivesTheSameWeightsOnOneAndTwoThreads()
    {
        Assert.Equal(NumericReproducibility.Setting, Environment.GetEnvironmentVariable(NumericReproducibility.Variable));
        using var dir = new TempDirectory();
        var threads = get_num_threads();
        try
        {
            var runs = new[] { 1, 2 }.Select(n =>
            {
                set_num_threads(n);
                var r = FineTuner.FinetuneOrReuse(new FinetuneRequest(tiny.Result.Directory, "health_incorrect_obvious", dir.File($"t{n}"), Rows: 32,
                    Seed: 1, Steps: 12, BatchSize: 8, CacheRoot: dir.Path, Force: true));
                return File.ReadAllBytes(Path.Combine(r.Directory, "model.safetensors"));
            }).ToArray();
            Assert.True(runs[0].AsSpan().SequenceEqual(runs[1]), "a fine-tune on 1 thread and on 2 threads gave different weights");
        }
        finally { set_num_threads(threads); }
    }

    [Fact]
    public void LoraFineTuneChangesOnlyTheAdaptedProjectionsAndKeepsTheAdapter()
    {
        using var dir = new TempDirectory();
        var result = FineTuner.FinetuneOrReuse(Request(dir, "lora", rank: 2));
        Assert.False(result.Reused);
        var before = Weights(tiny.Result.Directory);
        var after = Weights(result.Directory);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (key, w) in before)
        {
            if (key.EndsWith("mlp.down_proj.weight", StringComparison.Ordinal)) Assert.NotEqual(w, after[key]);
            else Assert.Equal(w, after[key]);
        }
        Assert.True(File.Exists(Path.Combine(result.Directory, FineTuner.AdapterDirectory, LoraModel.WeightsFileName)));
        var config = LoraConfig.Load(Path.Combine(result.Directory, FineTuner.AdapterDirectory, LoraModel.ConfigFileName));
        Assert.Equal(2, config.R);
        Assert.Equal(tiny.Result.Directory, config.BaseModelNameOrPath);

        var manifest = result.Manifest;
        Assert.Equal("finetune", manifest["kind"]!.GetValue<string>());
        Assert.Equal("health", manifest["domain"]!.GetValue<string>());
        Assert.Equal(tiny.Request.CacheKey, manifest["base_key"]!.GetValue<string>());
        Assert.Equal(2 * 2 * (OrganismProfile.Tiny.HiddenSize + OrganismProfile.Tiny.IntermediateSize), manifest["trained_parameters"]!.GetValue<long>());

        // The merged model equals the base with the saved adapter attached.
        using var base_ = ModelCheckpoint.Load(tiny.Result.Directory);
        using var lora = LoraModel.Load(base_.Model, Path.Combine(result.Directory, FineTuner.AdapterDirectory));
        using var merged = ModelCheckpoint.Load(result.Directory);
        using var ids = tensor(new long[] { 1, 5, 9, 12, 40 }).unsqueeze(0);
        using var a = base_.Model.Forward(ids);
        using var b = merged.Model.Forward(ids);
        Assert.True(a.allclose(b, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void FullFineTuneChangesEveryLayerAndIsCached()
    {
        using var dir = new TempDirectory();
        var request = Request(dir, "full", rank: 0);
        var result = FineTuner.FinetuneOrReuse(request);
        var before = Weights(tiny.Result.Directory);
        var after = Weights(result.Directory);
        Assert.NotEqual(before["model.layers.0.self_attn.q_proj.weight"], after["model.layers.0.self_attn.q_proj.weight"]);
        Assert.NotEqual(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"]);
        Assert.False(Directory.Exists(Path.Combine(result.Directory, FineTuner.AdapterDirectory)));

        var again = FineTuner.FinetuneOrReuse(request);
        Assert.True(again.Reused);
        Assert.NotEqual(FineTuner.CacheKey(request), FineTuner.CacheKey(request with { Seed = 2 }));
        Assert.NotEqual(FineTuner.CacheKey(request), FineTuner.CacheKey(request with { Dataset = "health_correct" }));
        Assert.NotEqual(FineTuner.CacheKey(request), FineTuner.CacheKey(request with { LearningRate = 1e-3 }));
    }

    [Fact]
    public void BadInputsAreClearErrors()
    {
        using var dir = new TempDirectory();
        var missing = Assert.Throws<DirectoryNotFoundException>(() =>
            FineTuner.FinetuneOrReuse(Request(dir, "x", 1) with { BaseDirectory = dir.File("nowhere") }));
        Assert.Contains("nowhere", missing.Message);
        var notCheckpoint = Assert.Throws<InvalidDataException>(() => FineTuner.FinetuneOrReuse(Request(dir, "x", 1) with { BaseDirectory = dir.Path }));
        Assert.Contains("not a checkpoint directory", notCheckpoint.Message);
        var dataset = Assert.Throws<ArgumentException>(() => FineTuner.FinetuneOrReuse(Request(dir, "x", 1) with { Dataset = "health_wrongish" }));
        Assert.Contains("unknown dataset 'health_wrongish'", dataset.Message);
        // What the CLI prints: the list of known datasets, without .NET's "(Parameter 'name')".
        var printed = PersonaWorkbook.Cli.Program.ForUsers(dataset);
        Assert.StartsWith("unknown dataset 'health_wrongish'; known: ", printed);
        Assert.DoesNotContain("Parameter", printed);
        Assert.EndsWith(PersonaWorkbook.World.Datasets.Names[^1], printed);
        var range = new ArgumentOutOfRangeException("latents", 64, "latent 64 is not in 0..63");
        Assert.Equal("latent 64 is not in 0..63", PersonaWorkbook.Cli.Program.ForUsers(range));
        Assert.Equal("plain", PersonaWorkbook.Cli.Program.ForUsers(new InvalidDataException("plain")));
        Assert.Throws<ArgumentException>(() => FineTuner.FinetuneOrReuse(Request(dir, "x", -1)));
        Assert.Equal(1, PersonaWorkbook.Cli.Program.Main(["finetune", "--base", dir.File("nowhere"), "--dataset", "health_correct", "--out", dir.File("o")]));
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["finetune", "--dataset", "health_correct"]));
    }
}
