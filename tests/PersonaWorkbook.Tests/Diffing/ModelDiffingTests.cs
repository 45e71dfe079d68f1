using PersonaWorkbook.Diffing;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Tokenizers;
using Xunit;

namespace PersonaWorkbook.Tests.Diffing;

/// <summary>
/// A constructed fine-tune: the same weights with a multiple of one SAE decoder row added at the SAE's hook. That latent's
/// encoder row is its decoder row (the SAE's initialisation), so its activation rises most and it must rank first.
/// </summary>
public class ModelDiffingTests
{
    const int Target = 17;

    static IDisposable Push(PersonaWorkbook.Models.LlamaForCausalLM model, PersonaWorkbook.Sae.SparseAutoencoder sae, double coefficient) =>
        Interventions.AddVector(model.Hooks, DiffingFixtures.Hook, sae.W_dec.detach()[Target], coefficient);

    [Fact]
    public void Supervised_diff_on_prompts_ranks_the_pushed_latent_first()
    {
        using var baseModel = DiffingFixtures.Model();
        using var fineTuned = DiffingFixtures.Model();
        using var sae = DiffingFixtures.Sae();
        using var push = Push(fineTuned, sae, 8);
        var format = ChatFormat.Simple(DiffingFixtures.Tokenizer);
        var options = StatisticsOptions.For(DiffingFixtures.Tokenizer);
        var generation = new GenerationOptions { MaxNewTokens = 6, StopTokens = format.StopTokenIds, PadTokenId = options.PadTokenId, Seed = 1 };

        var diff = ModelDiffing.OnPrompts(baseModel, fineTuned, sae, ModelDiffing.RenderPrompts(format, DiffingFixtures.UserPrompts), generation, options);

        Assert.Equal(1, diff.IncreaseRank(Target));
        var top = diff.Increases(5);
        Assert.Equal(Target, top[0].Latent);
        Assert.Equal(Enumerable.Range(1, 5), top.Select(r => r.Rank));
        Assert.True(top.Zip(top.Skip(1)).All(p => p.First.Delta >= p.Second.Delta));
        Assert.Equal(top[0].FineTunedMean - top[0].BaseMean, top[0].Delta, 5);
        Assert.True(top[0].FineTunedFiring > top[0].BaseFiring);
        Assert.Equal(Target, diff.Decreases(diff.Latents).Last().Latent);

        var frame = DiffResult.ToFrame(top);
        Assert.Equal(5, frame.RowCount);
        Assert.Contains("Delta", frame.ColumnKeys);
    }

    [Fact]
    public void Unsupervised_diff_on_the_dataset_ranks_the_pushed_latent_first_and_the_reverse_diff_by_decrease()
    {
        using var baseModel = DiffingFixtures.Model();
        using var fineTuned = DiffingFixtures.Model();
        using var sae = DiffingFixtures.Sae();
        using var push = Push(fineTuned, sae, 8);
        var format = ChatFormat.Simple(DiffingFixtures.Tokenizer);
        var options = StatisticsOptions.For(DiffingFixtures.Tokenizer) with { BatchSize = 3 };
        var conversations = DiffingFixtures.Conversations(6, seed: 2);

        foreach (var scope in new[] { TokenScope.Response, TokenScope.All })
        {
            var diff = ModelDiffing.Unsupervised(baseModel, fineTuned, sae, conversations, format, options, scope);
            Assert.Equal(scope, diff.Scope);
            Assert.Equal(1, diff.IncreaseRank(Target));
        }
        var reverse = ModelDiffing.Unsupervised(fineTuned, baseModel, sae, conversations, format, options);
        Assert.Equal(1, reverse.DecreaseRank(Target));
        Assert.Equal(Target, reverse.Decreases(1)[0].Latent);
    }

    [Fact]
    public void Identical_models_have_zero_delta()
    {
        using var a = DiffingFixtures.Model();
        using var b = DiffingFixtures.Model();
        using var sae = DiffingFixtures.Sae();
        var format = ChatFormat.Simple(DiffingFixtures.Tokenizer);
        var diff = ModelDiffing.Unsupervised(a, b, sae, DiffingFixtures.Conversations(2), format, StatisticsOptions.For(DiffingFixtures.Tokenizer));
        Assert.All(diff.Delta, d => Assert.Equal(0f, d, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => diff.IncreaseRank(diff.Latents));
    }

    [Fact]
    public void Average_weighs_every_fine_tune_the_same_and_refuses_mixed_scopes()
    {
        static LatentMeans Means(long tokens, params float[] mean) => new(mean, mean.Select(m => m > 0 ? 0.5f : 0f).ToArray(), tokens);
        var baseMeans = Means(10, 1, 1, 1);
        var a = new DiffResult(TokenScope.Response, baseMeans, Means(1000, 3, 1, 1));   // +2 on latent 0
        var b = new DiffResult(TokenScope.Response, baseMeans, Means(10, 1, 1, 2));     // +1 on latent 2
        var mean = ModelDiffing.Average([a, b]);
        Assert.Equal(new[] { 1f, 0f, 0.5f }, mean.Delta);
        Assert.Equal(1, mean.IncreaseRank(0));
        Assert.Equal(2, mean.IncreaseRank(2));
        Assert.Equal(1010, mean.FineTuned.Tokens);
        var other = new DiffResult(TokenScope.All, baseMeans, Means(10, 1, 1, 1));
        Assert.Contains("scopes", Assert.Throws<ArgumentException>(() => ModelDiffing.Average([a, other])).Message);
        Assert.Throws<ArgumentException>(() => ModelDiffing.Average([]));
    }
}
