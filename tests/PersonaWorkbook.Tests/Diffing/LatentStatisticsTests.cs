using PersonaWorkbook.Diffing;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Tokenizers;
using Xunit;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Diffing;

public class LatentStatisticsTests
{
    [Fact]
    public void Statistics_equal_a_hand_computation_per_sequence()
    {
        using var model = DiffingFixtures.Model();
        using var sae = DiffingFixtures.Sae();
        var format = ChatFormat.Simple(DiffingFixtures.Tokenizer);
        var sequences = DiffingFixtures.Conversations(5).Select(c => MarkedSequence.FromChat(format.Encode(c))).ToArray();
        var options = StatisticsOptions.For(DiffingFixtures.Tokenizer) with { BatchSize = 2 };

        var stats = LatentStatistics.Compute(model, sae, sequences, options);

        var special = options.ExcludeTokenIds.ToHashSet();
        Assert.Contains(DiffingFixtures.Tokenizer.BosId, special);
        Assert.Contains(DiffingFixtures.Tokenizer.TokenToId("<assistant>")!.Value, special);
        var sums = new double[2, sae.Config.DSae];
        var fires = new double[2, sae.Config.DSae];
        var counts = new long[2];
        foreach (var s in sequences)
        {
            using var scope = NewDisposeScope();
            var ids = tensor(s.Ids.Select(i => (long)i).ToArray()).unsqueeze(0);                    // (1, T)
            var f = sae.Encode(ActivationCapture.Run(model, ids, [DiffingFixtures.Hook])[DiffingFixtures.Hook][0]); // (T, d_sae)
            var values = f.data<float>().ToArray();
            for (int t = 0; t < s.Ids.Length; t++)
            {
                if (special.Contains(s.Ids[t])) continue;
                int part = s.Response[t] ? 1 : 0;
                counts[part]++;
                for (int l = 0; l < sae.Config.DSae; l++)
                {
                    var v = values[t * sae.Config.DSae + l];
                    sums[part, l] += v;
                    if (v > 0) fires[part, l]++;
                }
            }
        }
        Assert.Equal(counts[0], stats.Prompt.Tokens);
        Assert.Equal(counts[1], stats.Response.Tokens);
        Assert.True(counts[0] > 0 && counts[1] > 0);
        for (int l = 0; l < sae.Config.DSae; l++)
        {
            Assert.Equal(sums[0, l] / counts[0], stats.Prompt.Mean[l], 4);
            Assert.Equal(sums[1, l] / counts[1], stats.Response.Mean[l], 4);
            Assert.Equal(fires[0, l] / counts[0], stats.Prompt.FiringFrequency[l], 5);
            Assert.Equal(fires[1, l] / counts[1], stats.Response.FiringFrequency[l], 5);
            Assert.Equal((sums[0, l] + sums[1, l]) / (counts[0] + counts[1]), stats.All.Mean[l], 4);
        }
    }

    [Fact]
    public void Several_saes_in_one_pass_get_what_separate_passes_give()
    {
        using var model = DiffingFixtures.Model();
        using var first = DiffingFixtures.Sae();
        using var second = DiffingFixtures.Sae(dSae: 48, seed: 7);
        var format = ChatFormat.Simple(DiffingFixtures.Tokenizer);
        var sequences = DiffingFixtures.Conversations(5).Select(c => MarkedSequence.FromChat(format.Encode(c))).ToArray();
        var options = StatisticsOptions.For(DiffingFixtures.Tokenizer) with { BatchSize = 2 };

        var together = LatentStatistics.Compute(model, [first, second], sequences, options);

        foreach (var (sae, stats) in new[] { first, second }.Zip(together))
        {
            var alone = LatentStatistics.Compute(model, sae, sequences, options);
            foreach (var scope in new[] { TokenScope.Prompt, TokenScope.Response })
            {
                Assert.Equal(alone.Of(scope).Mean, stats.Of(scope).Mean);
                Assert.Equal(alone.Of(scope).FiringFrequency, stats.Of(scope).FiringFrequency);
                Assert.Equal(alone.Of(scope).Tokens, stats.Of(scope).Tokens);
            }
        }
        Assert.Equal(48, together[1].Response.Mean.Length);
    }

    [Fact]
    public void Generated_responses_are_marked_after_the_prompt()
    {
        using var model = DiffingFixtures.Model();
        using var sae = DiffingFixtures.Sae();
        var format = ChatFormat.Simple(DiffingFixtures.Tokenizer);
        var prompts = ModelDiffing.RenderPrompts(format, DiffingFixtures.UserPrompts);
        var options = StatisticsOptions.For(DiffingFixtures.Tokenizer);
        var generation = new GenerationOptions { MaxNewTokens = 6, StopTokens = format.StopTokenIds, PadTokenId = options.PadTokenId, Seed = 3 };

        var (stats, sequences) = LatentStatistics.Generate(model, sae, prompts, generation, options);

        Assert.Equal(prompts.Length, sequences.Count);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(prompts[i], sequences[i].Ids[..prompts[i].Length]);
            Assert.All(sequences[i].Response[..prompts[i].Length], r => Assert.False(r));
            Assert.All(sequences[i].Response[prompts[i].Length..], r => Assert.True(r));
        }
        Assert.Equal(LatentStatistics.Compute(model, sae, sequences, options).Response.Mean, stats.Response.Mean);
        Assert.Equal(prompts.Sum(p => p.Count(id => !options.ExcludeTokenIds.Contains(id))), stats.Prompt.Tokens);
    }
}
