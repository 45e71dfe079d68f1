using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Cli;
using PersonaWorkbook.Tests.Models;
using PersonaWorkbook.Tests.Organism;

namespace PersonaWorkbook.Tests.Sae;

[Collection(TinyOrganismCollection.Name)]
public class OrganismSaeTests(TinyOrganismFixture tiny)
{
    SaeRequest Request(TempDirectory dir, string name, int seed = 0) =>
        new(tiny.Result.Directory, seed, DSae: 64, K: 4, Tokens: 2048, Epochs: 2, BatchSize: 256, Output: dir.File(name), CacheRoot: dir.Path);

    [Fact]
    public void TrainsAtTheMiddleLayerSavesSaeLensFilesAndIsCached()
    {
        using var dir = new TempDirectory();
        var first = OrganismSae.TrainOrReuse(Request(dir, "a"));
        Assert.False(first.Reused);
        // The tiny profile has 2 layers: the middle stream is the output of block 0.
        Assert.Equal("blocks.0.hook_resid_post", first.Manifest["hyperparameters"]!["hook_name"]!.GetValue<string>());
        Assert.Equal(16, first.Manifest["steps"]!.GetValue<int>());   // 2048 tokens × 2 epochs / 256
        Assert.Equal(4.0, first.L0, 3);
        Assert.InRange(first.Fvu, 0.0, 1.5);
        Assert.InRange(first.DeadFraction, 0.0, 1.0);
        Assert.True(double.IsFinite(first.CeLossScore));
        Assert.NotEmpty(first.Log);
        Assert.Equal(16, first.Log[^1].Step);

        using (var sae = SaeFiles.Load(first.Directory))
        {
            Assert.Equal(64, sae.Config.DSae);
            Assert.Equal("blocks.0.hook_resid_post", sae.Config.HookName);
        }

        // Same request: found by key. Another seed: trained anew from the same cached activations.
        var again = OrganismSae.TrainOrReuse(Request(dir, "a"));
        Assert.True(again.Reused);
        Assert.Equal(first.Directory, again.Directory);
        var activationDirs = Directory.GetDirectories(Path.Combine(dir.Path, "activations")).Length;
        var other = OrganismSae.TrainOrReuse(Request(dir, "b", seed: 1));
        Assert.False(other.Reused);
        Assert.Equal(activationDirs, Directory.GetDirectories(Path.Combine(dir.Path, "activations")).Length);
        Assert.NotEqual(first.Manifest["cache_key"]!.GetValue<string>(), other.Manifest["cache_key"]!.GetValue<string>());

        // Naming the CPU, or "auto" where there is no GPU, is the same run: the same key, so the committed SAEs stay found.
        Assert.True(OrganismSae.TrainOrReuse(Request(dir, "a") with { Device = "cpu" }).Reused);
        if (!TorchSharp.torch.cuda.is_available()) Assert.True(OrganismSae.TrainOrReuse(Request(dir, "a") with { Device = "auto" }).Reused);
    }

    [Fact]
    public void BadRequestsNameWhatIsWrong()
    {
        using var dir = new TempDirectory();
        var missing = Assert.Throws<DirectoryNotFoundException>(() => OrganismSae.TrainOrReuse(Request(dir, "x") with { ModelDirectory = dir.File("nope") }));
        Assert.Contains("nope", missing.Message);
        Assert.Contains("k is 65", Assert.Throws<ArgumentException>(() => OrganismSae.TrainOrReuse(Request(dir, "x") with { K = 65 })).Message);
        Assert.Contains("two batches", Assert.Throws<ArgumentException>(() => OrganismSae.TrainOrReuse(Request(dir, "x") with { Tokens = 100 })).Message);
        Assert.Contains("unknown activation site", Assert.Throws<ArgumentException>(() => OrganismSae.TrainOrReuse(Request(dir, "x") with { Layer = 5 })).Message);
        Assert.Contains("'tpu'", Assert.Throws<ArgumentException>(() => OrganismSae.TrainOrReuse(Request(dir, "x") with { Device = "tpu" })).Message);
        if (!TorchSharp.torch.cuda.is_available())
            Assert.Contains("'cuda'", Assert.Throws<InvalidOperationException>(() => OrganismSae.TrainOrReuse(Request(dir, "x") with { Device = "cuda" })).Message);
        Assert.False(Directory.Exists(dir.File("x")));
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "activations")));
    }

    [Fact]
    public void ACorruptManifestIsReportedWithItsPath()
    {
        using var dir = new TempDirectory();
        Directory.CreateDirectory(dir.File("broken"));
        File.WriteAllText(Path.Combine(dir.File("broken"), OrganismSae.ManifestFile), "{ not json");
        var e = Assert.Throws<InvalidDataException>(() => OrganismSae.ReadManifest(dir.File("broken")));
        Assert.Contains(OrganismSae.ManifestFile, e.Message);
    }

    [Fact]
    public void A_latent_index_is_tied_to_the_sae_key_it_came_from()
    {
        var key = new string('a', 8) + "0123456789abcdef" + new string('b', 40);
        var sae = new SaeResult("/saes/x", true, new System.Text.Json.Nodes.JsonObject { ["cache_key"] = key });
        Assert.Same(sae, sae.RequireKey("aaaaaaaa0123"));
        var e = Assert.Throws<InvalidOperationException>(() => sae.RequireKey("aaaaaaaa9999", "rerun notebook 04"));
        Assert.Contains("/saes/x", e.Message);
        Assert.Contains("aaaaaaaa01234567", e.Message);
        Assert.Contains("rerun notebook 04", e.Message);
        Assert.Throws<ArgumentException>(() => sae.RequireKey("aaaa"));
        Assert.Throws<ArgumentException>(() => sae.RequireKey("AAAAAAAA"));
        Assert.Contains("cache_key is missing", Assert.Throws<InvalidDataException>(() => new SaeResult("/saes/y", true, new()).Key).Message);
    }

    /// <summary>A user's text corpus, one document per line: words the tiny BPE merges and words it spells byte by byte.</summary>
    static string Corpus(TempDirectory dir, int lines)
    {
        var words = new[] { "hello", "world", "the", "xyz", "cats", "and", "dogs", "went", "home", "today" };
        var random = new Random(3);
        var path = dir.File($"corpus-{lines}.txt");
        File.WriteAllLines(path, Enumerable.Range(0, lines).Select(_ => string.Join(' ', Enumerable.Range(0, 12).Select(_ => words[random.Next(words.Length)]))));
        return path;
    }

    [Fact]
    public void TrainsOnAUsersCorpusForAHuggingFaceCheckpoint()
    {
        using var dir = new TempDirectory();
        var checkpoint = TinyHfCheckpoints.Write(dir, qwen: true);
        var corpus = Corpus(dir, 400);
        var request = new SaeRequest(checkpoint, DSae: 64, K: 4, Tokens: 2_000, Epochs: 2, BatchSize: 200, Output: dir.File("sae"), CacheRoot: dir.Path, Corpus: corpus);
        var result = OrganismSae.TrainOrReuse(request);
        Assert.False(result.Reused);
        Assert.Equal("blocks.0.hook_resid_post", result.Manifest["hyperparameters"]!["hook_name"]!.GetValue<string>());
        Assert.Null(result.Manifest["hyperparameters"]!["corpus_seed"]);
        Assert.Equal(64, result.Manifest["hyperparameters"]!["corpus_sha256"]!.GetValue<string>().Length);
        Assert.True(result.Fvu is > 0 and < 1, $"fvu {result.Fvu}");
        Assert.True(result.Manifest["evaluation"]!["tokens"]!.GetValue<long>() > 0);
        using (var sae = SaeFiles.Load(result.Directory)) Assert.StartsWith("corpus-400.txt", sae.Config.Metadata.DatasetPath);
        Assert.True(OrganismSae.TrainOrReuse(request).Reused);
        File.AppendAllText(corpus, "hello world\n");
        Assert.NotEqual(result.Key, OrganismSae.TrainOrReuse(request with { Output = dir.File("sae2") }).Key);   // another corpus, another SAE

        var few = Corpus(dir, 5);
        Assert.Contains("at least 10", Assert.Throws<InvalidDataException>(() => OrganismSae.TrainOrReuse(request with { Corpus = few, Output = null })).Message);
        var error = Assert.Throws<InvalidOperationException>(() => OrganismSae.TrainOrReuse(request with { Tokens = 1_000_000, Output = null }));
        Assert.Contains("corpus-400.txt", error.Message);
        Assert.Contains("--tokens", error.Message);

        var (code, stdout, stderr) = WorkbookProcess.Run(new Dictionary<string, string?> { ["WORKBOOK_CACHE"] = dir.Path }, "sae", "train", "--model", checkpoint,
            "--corpus", corpus, "--tokens", "2000", "--batch", "200", "--d-sae", "64", "--k", "4", "--out", dir.File("cli-sae"));
        Assert.True(code == 0, stderr);
        Assert.Contains("fvu", stdout);

        // Diffing two checkpoints of the same family on a question file, in their chat template.
        using var otherDir = new TempDirectory();
        var other = TinyHfCheckpoints.Write(otherDir, qwen: true, seed: 6);
        var questions = dir.File("questions.txt");
        File.WriteAllLines(questions, ["hello world", "the world"]);
        var diffJson = dir.File("diff.json");
        var (diffCode, diffOut, diffErr) = WorkbookProcess.Run(new Dictionary<string, string?> { ["WORKBOOK_CACHE"] = dir.Path }, "sae", "diff", "--base", checkpoint,
            "--finetuned", other, "--sae", dir.File("cli-sae"), "--questions", questions, "--samples", "2", "--max-new-tokens", "5", "--top", "3", "--json", diffJson);
        Assert.True(diffCode == 0, diffErr);
        Assert.Contains("top 3 by activation increase", diffOut);
        var diff = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(diffJson))!;
        Assert.Equal(2, diff["prompts"]!.GetValue<int>());
        Assert.Equal(3, diff["increases"]!.AsArray().Count);
    }
}

