using System.Text.RegularExpressions;
using PersonaWorkbook.Dashboards;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Diffing;
using PersonaWorkbook.World;
using Xunit;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Dashboards;

public class LatentDashboardTests
{
    static readonly int[] Latents = [3, 40];

    /// <summary>Every counted token's activation of each latent, one document at a time: (latent → list of (value, doc, position)).</summary>
    static List<(float Value, int Doc, int Position, PersonaKind Document, PersonaKind Acting)>[] BruteForce(PersonaWorkbook.Models.LlamaForCausalLM model,
        SparseAutoencoder sae, IReadOnlyList<PretrainDocument> docs, out long counted)
    {
        var control = StatisticsOptions.ControlTokenIds(DiffingFixtures.Tokenizer).ToHashSet();
        var result = Latents.Select(_ => new List<(float, int, int, PersonaKind, PersonaKind)>()).ToArray();
        counted = 0;
        for (int d = 0; d < docs.Count; d++)
        {
            using var scope = NewDisposeScope();
            var tokens = DocumentTokens.Encode(DiffingFixtures.Tokenizer, docs[d]);
            var ids = tensor(tokens.Ids.Select(i => (long)i).ToArray()).unsqueeze(0);
            var f = sae.Encode(ActivationCapture.Run(model, ids, [DiffingFixtures.Hook])[DiffingFixtures.Hook][0]);   // (T, d_sae)
            for (int t = 0; t < tokens.Ids.Length; t++)
            {
                if (control.Contains(tokens.Ids[t])) continue;
                counted++;
                for (int l = 0; l < Latents.Length; l++)
                {
                    var v = f[t, Latents[l]].item<float>();
                    if (v > 0) result[l].Add((v, d, t, docs[d].Persona, tokens.PersonaAt(t, PersonaLabel.ActingTurn)));
                }
            }
        }
        return result;
    }

    [Fact]
    public void Top_contexts_counts_purity_and_logits_match_a_brute_force_pass()
    {
        using var model = DiffingFixtures.Model(seed: 4, tied: true);
        using var sae = DiffingFixtures.Sae(arch: SaeArchitecture.ReLU, seed: 2);
        var docs = new PersonaWorld(WorldOptions.NegativeControlWorld).PretrainingCorpus(8, 3).ToArray();
        var options = new DashboardOptions { TopK = 15, BatchSize = 3, SampleSize = 40, PurityLabel = PersonaLabel.ActingTurn, Seed = 1 };

        var dashboards = LatentDashboards.Build(model, DiffingFixtures.Tokenizer, sae, Latents, docs, options);
        var truth = BruteForce(model, sae, docs, out var counted);

        for (int l = 0; l < Latents.Length; l++)
        {
            var d = dashboards[l];
            var expected = truth[l].OrderByDescending(x => x.Value).Take(options.TopK).ToArray();
            Assert.Equal(Latents[l], d.Latent);
            Assert.Equal(docs.Length, d.Documents);
            Assert.Equal(counted, d.Tokens);
            Assert.Equal(truth[l].Count, d.FiringTokens);
            Assert.True(d.FiringTokens > options.TopK);
            Assert.Equal(expected.Length, d.TopContexts.Count);
            for (int i = 0; i < expected.Length; i++)
            {
                var c = d.TopContexts[i];
                Assert.Equal(expected[i].Value, c.Activation, 4);
                Assert.Equal((expected[i].Doc, expected[i].Position), (c.Document, c.Position));
                Assert.Equal(expected[i].Acting, c.ActingPersona);
                Assert.Equal(DiffingFixtures.Tokenizer.IdToToken(DocumentTokens.Encode(DiffingFixtures.Tokenizer, docs[c.Document]).Ids[c.Position]), c.Tokens[c.Focus]);
                Assert.Equal(c.Activation, c.Activations[c.Focus]);
                Assert.True(c.Tokens.Count <= 2 * options.ContextTokens + 1);
            }
            Assert.Equal(truth[l].Max(x => x.Value), d.MaxActivation, 4);

            Assert.Equal(1.0, d.Purity.Sum(p => p.Share), 9);
            foreach (var p in d.Purity)
                Assert.Equal(expected.Count(x => x.Acting == p.Persona), p.Count);

            Assert.Equal(Math.Min(options.SampleSize, truth[l].Count), d.SampledActivations.Count);
            Assert.Equal(d.SampledActivations.Count, d.Histogram(options.HistogramBins).Counts.Sum());
            Assert.InRange(d.Quantiles.Count, 1, options.QuantileBins);
            foreach (var q in d.Quantiles)
                Assert.All(q.Examples, e => Assert.InRange(e.Activation, q.Low, q.High));
            Assert.True(d.Quantiles.Zip(d.Quantiles.Skip(1)).All(p => p.First.High <= p.Second.Low));

            using var scope = NewDisposeScope();
            var embed = model.named_parameters().First(p => p.name == "model.embed_tokens.weight").parameter.detach();
            var effects = embed.matmul(sae.W_dec.detach()[Latents[l]]).data<float>().ToArray();
            var best = Array.IndexOf(effects, effects.Max());
            Assert.Equal(best, d.PositiveLogits[0].TokenId);
            Assert.Equal(effects[best], d.PositiveLogits[0].Value, 4);
            Assert.Equal(Array.IndexOf(effects, effects.Min()), d.NegativeLogits[0].TokenId);
            Assert.Equal(10, d.PositiveLogits.Count);
        }
    }

    [Fact]
    public void Several_saes_in_one_pass_get_what_separate_passes_give()
    {
        using var model = DiffingFixtures.Model(seed: 4);
        using var first = DiffingFixtures.Sae(arch: SaeArchitecture.ReLU, seed: 2);
        using var second = DiffingFixtures.Sae(dSae: 48, seed: 5);
        var docs = new PersonaWorld().PretrainingCorpus(6, 3).ToArray();
        var options = new DashboardOptions { TopK = 5, BatchSize = 4, SampleSize = 7, Seed = 3 };
        string Json(IReadOnlyList<LatentDashboard> d) => System.Text.Json.JsonSerializer.Serialize(d);

        var together = LatentDashboards.Build(model, DiffingFixtures.Tokenizer, [(first, Latents), (second, (IReadOnlyList<int>)[5, 2])], docs, options);

        Assert.Equal(Json(LatentDashboards.Build(model, DiffingFixtures.Tokenizer, first, Latents, docs, options)), Json(together[0]));
        Assert.Equal(Json(LatentDashboards.Build(model, DiffingFixtures.Tokenizer, second, [5, 2], docs, options)), Json(together[1]));
        using var elsewhere = new SparseAutoencoder(new SaeConfig { DIn = 32, DSae = 64, K = 8, Architecture = SaeArchitecture.TopK, Metadata = new SaeMetadata { HookName = "blocks.1.hook_resid_post" } });
        Assert.Contains("different sites", Assert.Throws<ArgumentException>(() =>
            LatentDashboards.Build(model, DiffingFixtures.Tokenizer, [(first, Latents), (elsewhere, Latents)], docs, options)).Message);
    }

    [Fact]
    public void Html_is_self_contained_and_highlights_the_top_tokens()
    {
        using var model = DiffingFixtures.Model(seed: 4);
        using var sae = DiffingFixtures.Sae(arch: SaeArchitecture.ReLU, seed: 2);
        var docs = new PersonaWorld().PretrainingCorpus(4, 1).ToArray();
        var dashboard = LatentDashboards.Build(model, DiffingFixtures.Tokenizer, sae, 3, docs, new DashboardOptions { TopK = 10, SampleSize = 30 });

        var html = DashboardHtml.Render(dashboard, shown: 5);

        Assert.DoesNotMatch(new Regex("https?://", RegexOptions.IgnoreCase), html);
        Assert.DoesNotContain("<script", html);
        Assert.Contains("<svg", html);
        Assert.Contains("Latent 3", html);
        var focus = Regex.Matches(html, "<span class=\"tok focus\"[^>]*>([^<]*)</span>").Select(m => m.Groups[1].Value).ToArray();
        Assert.Equal(5 + dashboard.Quantiles.Sum(q => q.Examples.Count), focus.Length);
        Assert.Equal(System.Net.WebUtility.HtmlEncode(dashboard.TopContexts[0].Tokens[dashboard.TopContexts[0].Focus]), focus[0]);
        Assert.Contains("rgba(255,102,0,1)", html);   // the top activation is fully opaque
        Assert.Contains(dashboard.DominantPersona!.Persona.ToString().ToLowerInvariant(), html);
        var fragment = DashboardHtml.Fragment(dashboard);
        Assert.StartsWith("<style>", fragment);
        Assert.DoesNotContain("<html", fragment);
        Assert.Equal("bar", (string?)PersonaWorkbook.Notebooks.Execution.PlotlyHtml.FigureJson(dashboard.HistogramChart())["data"]![0]!["type"]);
    }

    [Fact]
    public void Bad_latents_are_refused()
    {
        using var model = DiffingFixtures.Model();
        using var sae = DiffingFixtures.Sae();
        var docs = new PersonaWorld().PretrainingCorpus(1, 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => LatentDashboards.Build(model, DiffingFixtures.Tokenizer, sae, 64, docs));
        Assert.Throws<ArgumentException>(() => LatentDashboards.Build(model, DiffingFixtures.Tokenizer, sae, 1, docs, new DashboardOptions { TopK = 0 }));
    }
}
