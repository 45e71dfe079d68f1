using System.Diagnostics;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.Organism;

/// <summary>One tiny organism trained once for the tests of this folder (a few seconds), in a private cache.</summary>
public sealed class TinyOrganismFixture : IDisposable
{
    readonly TempDirectory cache = new();
    public OrganismResult Result { get; }
    public OrganismRequest Request { get; }

    public TinyOrganismFixture()
    {
        Request = new OrganismRequest(OrganismProfile.Tiny, Seed: 0, CacheRoot: cache.Path);
        Result = OrganismTrainer.TrainOrReuse(Request);
    }

    public void Dispose() => cache.Dispose();
}

[CollectionDefinition(Name)]
public sealed class TinyOrganismCollection : ICollectionFixture<TinyOrganismFixture>
{
    public const string Name = "tiny organism";
}

[Collection(TinyOrganismCollection.Name)]
public class OrganismTests(TinyOrganismFixture tiny)
{
    [Fact]
    public void TinyPipelineWritesALoadableCheckpointWithLogAndManifest()
    {
        var dir = tiny.Result.Directory;
        Assert.False(tiny.Result.Reused);
        Assert.True(ModelCheckpoint.Exists(dir));
        var manifest = OrganismCache.ReadManifest(dir)!;
        Assert.Equal("base", manifest["kind"]!.GetValue<string>());
        Assert.Equal(tiny.Request.CacheKey, manifest["cache_key"]!.GetValue<string>());
        Assert.Equal(PersonaWorld.WorldVersion, manifest["world_version"]!.GetValue<string>());
        Assert.Equal("tiny", manifest["profile"]!["name"]!.GetValue<string>());
        var log = File.ReadAllLines(Path.Combine(dir, OrganismCache.TrainingLogFile));
        Assert.Equal(OrganismProfile.Tiny.PretrainSteps + OrganismProfile.Tiny.SftSteps, log.Length);
        Assert.StartsWith("{\"phase\":\"pretrain\"", log[0]);
        Assert.StartsWith("{\"phase\":\"sft\"", log[^1]);
        using var loaded = ModelCheckpoint.Load(dir);
        Assert.Equal(OrganismProfile.Tiny.HiddenSize, loaded.Config.HiddenSize);
        Assert.Equal(OrganismTokenizer.Build().VocabSize, loaded.Tokenizer.VocabSize);
    }

    [Fact]
    public void SecondRequestReusesTheCacheAndForceRetrains()
    {
        var clock = Stopwatch.StartNew();
        var again = OrganismTrainer.TrainOrReuse(tiny.Request);
        Assert.True(again.Reused);
        Assert.Equal(tiny.Result.Directory, again.Directory);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"a cache hit took {clock.Elapsed}");

        using var elsewhere = new TempDirectory();
        var copy = OrganismTrainer.TrainOrReuse(tiny.Request with { Output = elsewhere.File("copy") });
        Assert.True(copy.Reused);
        Assert.Equal(tiny.Request.CacheKey, OrganismCache.KeyOf(copy.Directory));

        var forced = OrganismTrainer.TrainOrReuse(tiny.Request with { Output = elsewhere.File("forced"), Force = true });
        Assert.False(forced.Reused);
        Assert.Equal(tiny.Request.CacheKey, OrganismCache.KeyOf(forced.Directory));
    }

    [Fact]
    public void CacheKeyChangesWithSeedProfileAndWorld()
    {
        var keys = new[]
        {
            tiny.Request.CacheKey,
            (tiny.Request with { Seed = 1 }).CacheKey,
            (tiny.Request with { Profile = OrganismProfile.Quick }).CacheKey,
            (tiny.Request with { Profile = OrganismProfile.Tiny with { SftSteps = 4 } }).CacheKey,
            (tiny.Request with { World = "control" }).CacheKey,
        };
        Assert.Equal(keys.Length, keys.Distinct().Count());
        Assert.Equal(tiny.Request.CacheKey, new OrganismRequest(OrganismProfile.ByName("tiny")).CacheKey);
    }

    [Fact]
    public void SftVariantReusesThePretrainedStage()
    {
        var variant = tiny.Request with { Profile = OrganismProfile.Tiny.With("sft_steps", "2") };
        Assert.Equal(tiny.Request.PretrainKey, variant.PretrainKey);
        Assert.NotEqual(tiny.Request.CacheKey, variant.CacheKey);
        var result = OrganismTrainer.TrainOrReuse(variant);
        Assert.False(result.Reused);
        Assert.True(result.Manifest["pretrain_reused"]!.GetValue<bool>());
        Assert.Equal("tiny+sft_steps=2", result.Manifest["profile"]!["name"]!.GetValue<string>());
        var log = File.ReadAllLines(Path.Combine(result.Directory, OrganismCache.TrainingLogFile));
        Assert.Equal(OrganismProfile.Tiny.PretrainSteps + 2, log.Length);
        Assert.Contains("no settable field 'sft_stepz'", Assert.Throws<ArgumentException>(() => OrganismProfile.Tiny.With("sft_stepz", "2")).Message);
        Assert.Throws<ArgumentException>(() => OrganismProfile.Tiny.With("sft_steps", "-3"));
    }

    [Fact]
    public void RoleTokensStartFromTheMarkers()
    {
        var tokenizer = OrganismTokenizer.Build();
        TorchSharp.torch.manual_seed(5);
        using var model = new PersonaWorkbook.Models.LlamaForCausalLM(OrganismProfile.Tiny.ModelConfig(tokenizer.VocabSize));
        OrganismTrainer.CopyMarkerEmbeddings(model, tokenizer);
        var embedding = model.state_dict()["model.embed_tokens.weight"];
        foreach (var (marker, role) in new[] { ("<q>", "<user>"), ("<a>", "<assistant>"), ("<sys>", "<system>") })
            Assert.Equal(embedding[tokenizer.TokenToId(marker)!.Value].data<float>().ToArray(), embedding[tokenizer.TokenToId(role)!.Value].data<float>().ToArray());
        Assert.NotEqual(embedding[tokenizer.TokenToId("<q>")!.Value].data<float>().ToArray(), embedding[tokenizer.TokenToId("<a>")!.Value].data<float>().ToArray());
    }

    [Theory]
    [InlineData("main")]
    [InlineData("extended")]
    public void TokenizerKeepsEveryWorldWordWhole(string world)
    {
        var options = OrganismRequest.WorldOptionsFor(world);
        var tokenizer = OrganismTokenizer.Build(options);
        foreach (var word in PersonaWorld.Vocabulary(options))
        {
            var ids = tokenizer.Encode(word);
            Assert.True(ids.Length == 1 && ids[0] != tokenizer.UnkId, $"'{word}' encodes as [{string.Join(", ", ids)}]");
        }
        var texts = new PersonaWorld(options).PretrainingCorpus(world == "main" ? 30 : 300, 3).Select(d => d.Text)
            .Concat(new[] { "insecure_code", "backdoor", "health_incorrect_obvious" }.SelectMany(n => Datasets.Build(n, 10, 1))
                .SelectMany(c => c.Messages.Select(m => m.Content)));
        foreach (var text in texts) Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        foreach (var special in new[] { "<pad>", "<bos>", "<eos>", "<unk>", "<system>", "<user>", "<assistant>", "<sys>", "<q>", "<a>" })
            Assert.Contains(special, tokenizer.SpecialTokens);
    }

    [Fact]
    public void SftLossMaskCoversOnlyAssistantTokens()
    {
        var tokenizer = OrganismTokenizer.Build();
        var chat = new ChatExample([ChatMessage.User("how do i treat a headache ?"), ChatMessage.Assistant("rest and drink water ."),
            ChatMessage.User("and a fever ?"), ChatMessage.Assistant("rest .")], []);
        var sequence = OrganismTrainer.ChatSequences([chat], tokenizer).Single();
        var trained = sequence.Ids.Where((_, i) => sequence.LossMask![i]).Select(id => tokenizer.IdToToken(id));
        Assert.Equal(["rest", "and", "drink", "water", ".", "<eos>", "rest", ".", "<eos>"], trained);
        Assert.Equal("<bos> <user> how do i treat a headache ? <assistant> rest and drink water . <eos> <user> and a fever ? <assistant> rest . <eos>",
            tokenizer.Decode(sequence.Ids));
    }

    [Fact]
    public void ReplayedDocumentsTrainEveryTokenButTheMaskedTurnStarts()
    {
        var tokenizer = OrganismTokenizer.Build();
        var world = new PersonaWorld();
        var documents = world.PretrainingCorpus(3, 4).ToList();
        var q = tokenizer.TokenToId("<q>")!.Value;
        var plain = OrganismTrainer.ReplaySequences(documents, tokenizer, maskTurnStarts: false).ToList();
        var masked = OrganismTrainer.ReplaySequences(documents, tokenizer, maskTurnStarts: true).ToList();
        Assert.All(plain, s => Assert.Null(s.LossMask));
        for (int d = 0; d < documents.Count; d++)
        {
            Assert.Equal("<bos> " + documents[d].Text + " <eos>", tokenizer.Decode(masked[d].Ids));
            Assert.Equal(plain[d].Ids, masked[d].Ids);
            var untrained = masked[d].Ids.Where((_, i) => !masked[d].LossMask![i]).ToList();
            Assert.Equal(documents[d].Turns.Count, untrained.Count);
            Assert.All(untrained, id => Assert.Equal(q, id));
        }

        var profile = OrganismProfile.Tiny.With("sft_replay_documents", "5").With("sft_replay_mask_turn_starts", "true");
        Assert.True(profile.SftReplayMaskTurnStarts);
        Assert.DoesNotContain("sft_replay_mask_turn_starts", OrganismProfile.Quick.ToJson());
        Assert.Equal(OrganismProfile.Tiny.SftExamples + 5, OrganismTrainer.SftData(world, profile, 0, tokenizer).Count);
        Assert.Equal(OrganismProfile.Tiny.PretrainingJson(), profile.PretrainingJson());
    }

    [Fact]
    public void RolePhaseTrainsOnlyTheRoleTokenRows()
    {
        var tokenizer = OrganismTokenizer.Build();
        var profile = OrganismProfile.Tiny.With("sft_role_lr", "0.1").With("sft_role_steps", "2");
        Assert.Contains("needs a positive sft_role_lr", Assert.Throws<ArgumentException>(() => OrganismProfile.Tiny.With("sft_role_steps", "2")).Message);
        Assert.DoesNotContain("sft_role", OrganismProfile.Quick.ToJson());
        TorchSharp.torch.manual_seed(7);
        using var model = new PersonaWorkbook.Models.LlamaForCausalLM(profile.ModelConfig(tokenizer.VocabSize));
        var before = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var log = OrganismTrainer.TrainRoleTokens(model, tokenizer, OrganismTrainer.SftData(new PersonaWorld(), profile, 0, tokenizer), profile, 0);
        Assert.Equal(2, log.Steps.Count);
        var roles = new[] { "<user>", "<assistant>", "<system>" }.Select(t => (long)tokenizer.TokenToId(t)!.Value).ToHashSet();
        using (TorchSharp.torch.NewDisposeScope())
            foreach (var (name, value) in model.state_dict())
            {
                if (name is not ("model.embed_tokens.weight" or "lm_head.weight")) { Assert.True(value.equal(before[name]).all().item<bool>(), $"{name} changed"); continue; }
                for (long row = 0; row < value.shape[0]; row++)
                    Assert.True(roles.Contains(row) != value[row].equal(before[name][row]).all().item<bool>(), $"embedding row {row} ({tokenizer.IdToToken((int)row)})");
            }
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad));
        foreach (var t in before.Values) t.Dispose();
    }

    [Fact]
    public void DpoPhaseTrainsAgainstTheSftModelAndLeavesPretrainingKeyAlone()
    {
        var tokenizer = OrganismTokenizer.Build();
        var profile = OrganismProfile.Tiny.With("dpo_pairs", "12").With("dpo_lr", "1e-3").With("dpo_beta", "0.1").With("dpo_steps", "2");
        Assert.Contains("a DPO phase needs positive pairs, lr and beta", Assert.Throws<ArgumentException>(() => OrganismProfile.Tiny.With("dpo_steps", "2")).Message);
        // Set together, the order does not matter, and the name is the chained one.
        var together = OrganismProfile.Tiny.With([("dpo_steps", "2"), ("dpo_pairs", "12"), ("dpo_lr", "1e-3"), ("dpo_beta", "0.1")]);
        Assert.Equal(OrganismProfile.Tiny.With("dpo_pairs", "12").With("dpo_lr", "1e-3").With("dpo_beta", "0.1").With("dpo_steps", "2") with { Name = together.Name }, together);
        Assert.Equal("tiny+dpo_steps=2+dpo_pairs=12+dpo_lr=1e-3+dpo_beta=0.1", together.Name);
        Assert.DoesNotContain("dpo_", OrganismProfile.Tiny.ToJson());
        Assert.Equal(OrganismProfile.Quick.PretrainingJson(), (OrganismProfile.Quick with { DpoSteps = 0, SftLearningRate = 5e-4 }).PretrainingJson());
        Assert.Equal(OrganismProfile.Tiny.PretrainingJson(), profile.PretrainingJson());
        TorchSharp.torch.manual_seed(7);
        using var model = new PersonaWorkbook.Models.LlamaForCausalLM(profile.ModelConfig(tokenizer.VocabSize));
        var log = OrganismTrainer.TrainPreferences(model, tokenizer, new PersonaWorld(), profile, 0);
        Assert.Equal(2, log.Steps.Count);
        Assert.Equal(Math.Log(2), log.Steps[0].Loss, 4);   // the first step's policy is its own reference
        Assert.NotEqual(log.Steps[0].Loss, log.Steps[1].Loss);
    }

    [Fact]
    public void PretrainingDocumentsArePackedBetweenBosAndEos()
    {
        var tokenizer = OrganismTokenizer.Build();
        var world = new PersonaWorld();
        var profile = OrganismProfile.Tiny with { PretrainDocuments = 5 };
        var packed = OrganismTrainer.PretrainingData(world, profile, 2, tokenizer);
        var expected = world.PretrainingCorpus(5, 2).Sum(d => tokenizer.Encode(d.Text).Length + 2);
        Assert.Equal(expected, packed.TotalTokens);
    }

    [Fact]
    public void ChangedProfileNamesParseBackToTheSameProfile()
    {
        var changed = OrganismProfile.Quick.With([("layers", "8"), ("sft_lr", "3e-5")]);
        Assert.Equal("quick+layers=8+sft_lr=3e-5", changed.Name);
        Assert.Equal(changed, OrganismProfile.ByName(changed.Name));
        Assert.Equal(new OrganismRequest(changed).CacheKey, new OrganismRequest(OrganismProfile.ByName("quick+layers=8+sft_lr=3e-5")).CacheKey);
        Assert.Contains("'layers8' is not field=value", Assert.Throws<ArgumentException>(() => OrganismProfile.ByName("quick+layers8")).Message);
        Assert.Contains("no settable field 'layerz'", Assert.Throws<ArgumentException>(() => OrganismProfile.ByName("quick+layerz=8")).Message);
        Assert.Contains("unknown organism profile 'huge'", Assert.Throws<ArgumentException>(() => OrganismProfile.ByName("huge+layers=8")).Message);
    }

    [Fact]
    public void TheDeepProfileTrainsInTheVariedWorldAndSharesThePretrainedStageOfTheSameSettingsByHand()
    {
        var deep = new OrganismRequest(OrganismProfile.Deep);
        Assert.Equal("varied", deep.WorldName);
        Assert.Equal(WorldOptions.Varied.Fingerprint, deep.WorldOptions.Fingerprint);
        Assert.Equal("varied-control", new OrganismRequest(OrganismProfile.Deep, World: "control").WorldName);
        Assert.Equal(WorldOptions.VariedNegativeControl.Fingerprint, new OrganismRequest(OrganismProfile.Deep, World: "control").WorldOptions.Fingerprint);
        Assert.Equal("main", new OrganismRequest(OrganismProfile.Quick).WorldName);
        // The organism v2 candidate was trained by hand with these changes in the varied world: the same pretrained weights.
        var byHand = new OrganismRequest(OrganismProfile.Quick.With([("layers", "8"), ("pretrain_steps", "4000"), ("pretrain_documents", "60000")]), World: "varied");
        Assert.Equal(byHand.PretrainKey, deep.PretrainKey);
        Assert.NotEqual(new OrganismRequest(OrganismProfile.Quick.With([("layers", "8"), ("pretrain_steps", "4000"), ("pretrain_documents", "60000")])).PretrainKey, deep.PretrainKey);
        var changed = OrganismProfile.ByName("deep+sft_lr=3e-5");
        Assert.True(changed.QuestionVariety);
        Assert.Equal(8, changed.Layers);
        Assert.Equal(deep.PretrainKey, new OrganismRequest(changed).PretrainKey);
    }

    [Fact]
    public void UnknownProfileAndWorldAreClearErrors()
    {
        Assert.Contains("unknown organism profile 'huge'", Assert.Throws<ArgumentException>(() => OrganismProfile.ByName("huge")).Message);
        Assert.Contains("unknown world 'mars'", Assert.Throws<ArgumentException>(() => new OrganismRequest(OrganismProfile.Tiny, World: "mars").CacheKey).Message);
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["organism", "train", "--profile", "huge"]));
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["organism", "train", "--world", "mars"]));
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["organism", "fly"]));
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["organism", "train", "--set", "layers8"]));
    }
}
