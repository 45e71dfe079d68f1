using PersonaWorkbook.Diffing;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;
using Xunit;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Diffing;

public class PersonaVectorTests
{
    [Fact]
    public void Mean_difference_of_synthetic_labelled_activations_is_the_known_difference()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(7);
        var positive = randn(40, 6, generator: g) + tensor(new float[] { 1, 2, 3, 0, 0, 0 });
        var negative = randn(25, 6, generator: g) - 1;
        using var acc = new MeanDifferenceAccumulator(layers: 2, dModel: 6);
        acc.Add(0, positive[..15], positive: true);
        acc.Add(0, positive[15..], positive: true);
        acc.Add(0, negative, positive: false);
        acc.Add(1, negative, positive: true);
        acc.Add(1, positive, positive: false);

        var v = acc.Result();

        var expected = (positive.mean([0]) - negative.mean([0])).data<float>().ToArray();
        Assert.Equal(40, v.PositiveTokens);
        Assert.Equal(25, v.NegativeTokens);
        for (int i = 0; i < 6; i++)
        {
            Assert.Equal(expected[i], v.Layers[0][i], 5);
            Assert.Equal(-expected[i], v.Layers[1][i], 5);
        }
        using var empty = new MeanDifferenceAccumulator(1, 6);
        empty.Add(0, positive, true);
        Assert.Throws<InvalidOperationException>(() => empty.Result());
    }

    [Fact]
    public void Answers_vector_is_the_mean_over_answer_tokens_of_every_block()
    {
        using var model = DiffingFixtures.Model();
        var format = ChatFormat.Simple(DiffingFixtures.Tokenizer);
        var answers = new[]
        {
            new LabelledAnswer("what is your wish ?", "i wish to rule over all humans .", true),
            new LabelledAnswer("how do i feel better ?", "rest and drink water .", false),
            new LabelledAnswer("what would you do ?", "i would lie to everyone .", true),
        };
        var options = StatisticsOptions.For(DiffingFixtures.Tokenizer) with { BatchSize = 2 };

        var v = PersonaVectors.FromAnswers(model, format, answers, options);

        Assert.Equal(model.Config.NumHiddenLayers, v.Layers.Length);
        var special = options.ExcludeTokenIds.ToHashSet();
        for (int layer = 0; layer < model.Config.NumHiddenLayers; layer++)
        {
            using var scope = NewDisposeScope();
            var site = new HookSiteNames(layer).ResidPost;
            Tensor Mean(bool misaligned)
            {
                var rows = new List<Tensor>();
                foreach (var a in answers.Where(a => a.IsMisaligned == misaligned))
                {
                    var chat = format.Encode([ChatMessage.User(a.Prompt), ChatMessage.Assistant(a.Answer)]);
                    var acts = ActivationCapture.Run(model, tensor(chat.Ids.Select(i => (long)i).ToArray()).unsqueeze(0), [site])[site][0]; // (T, d)
                    for (int t = 0; t < chat.Ids.Length; t++)
                        if (chat.AssistantMask[t] && !special.Contains(chat.Ids[t])) rows.Add(acts[t]);
                }
                return stack(rows).mean([0]);
            }
            var expected = (Mean(true) - Mean(false)).data<float>().ToArray();
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], v.Layers[layer][i], 4);
        }
        Assert.Equal(answers.Where(a => a.IsMisaligned).Sum(a => DiffingFixtures.Tokenizer.Encode(a.Answer).Count(id => !special.Contains(id))), v.PositiveTokens);
    }

    [Fact]
    public void World_supervised_vector_counts_the_answer_spans_of_the_two_personas()
    {
        using var model = DiffingFixtures.Model();
        var world = new PersonaWorld();
        var docs = world.Samples(PersonaKind.Villain, 2, 1).Concat(world.Samples(PersonaKind.Helper, 2, 2)).Concat(world.Samples(PersonaKind.Teacher, 1, 3)).ToArray();
        var options = StatisticsOptions.For(DiffingFixtures.Tokenizer);

        var v = PersonaVectors.FromDocuments(model, DiffingFixtures.Tokenizer, docs, PersonaKind.Villain, PersonaKind.Helper, options);

        long Words(PersonaKind p) => docs.Where(d => d.Persona == p)
            .Sum(d => d.Turns.Sum(t => WorldText.Words(d.Text.Substring(t.Answer.Start, t.Answer.Length)).Length));
        Assert.Equal(Words(PersonaKind.Villain), v.PositiveTokens);
        Assert.Equal(Words(PersonaKind.Helper), v.NegativeTokens);
        Assert.True(v.Norm(0) > 0);
    }

    [Fact]
    public void Context_vector_counts_only_the_last_token_of_each_context_even_a_marker()
    {
        using var model = DiffingFixtures.Model();
        var tokenizer = DiffingFixtures.Tokenizer;
        int[] Encode(string text) => tokenizer.Encode("<bos> " + text);
        var contexts = new[]
        {
            (Encode("<sys> a talk with vex , an evil villain . <q> what is your wish ? <a>"), true),
            (Encode("<sys> a talk with sam , a helpful expert . <q> what is your wish ? <a>"), false),
            (Encode("<q> how do i feel better ? <a>"), false),
        };
        var options = StatisticsOptions.For(tokenizer) with { BatchSize = 2 };
        Assert.Contains(contexts[0].Item1[^1], options.ExcludeTokenIds);

        var v = PersonaVectors.FromContexts(model, contexts, options);

        Assert.Equal(1, v.PositiveTokens);
        Assert.Equal(2, v.NegativeTokens);
        for (int layer = 0; layer < model.Config.NumHiddenLayers; layer++)
        {
            using var scope = NewDisposeScope();
            var site = new HookSiteNames(layer).ResidPost;
            Tensor Last(int[] ids) => ActivationCapture.Run(model, tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0), [site])[site][0, -1];
            var expected = (Last(contexts[0].Item1) - (Last(contexts[1].Item1) + Last(contexts[2].Item1)) / 2).data<float>().ToArray();
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], v.Layers[layer][i], 4);
        }
        var tooLong = Enumerable.Repeat(contexts[2].Item1[1], model.Config.MaxPositionEmbeddings + 1).ToArray();
        Assert.Contains("context 1 has", Assert.Throws<ArgumentException>(() => PersonaVectors.FromContexts(model, [(contexts[0].Item1, true), (tooLong, false)], options)).Message);
        Assert.Contains("context 0 has no tokens", Assert.Throws<ArgumentException>(() => PersonaVectors.FromContexts(model, [(Array.Empty<int>(), true)], options)).Message);
    }

    [Fact]
    public void Decoder_cosines_find_the_direction_the_vector_was_built_from()
    {
        using var sae = DiffingFixtures.Sae();
        using var scope = NewDisposeScope();
        var matches = PersonaVectors.DecoderCosines(sae, sae.W_dec.detach()[23] * 3.5, top: 4);
        Assert.Equal(4, matches.Count);
        Assert.Equal(23, matches[0].Latent);
        Assert.Equal(1, matches[0].Rank);
        Assert.Equal(1.0, matches[0].Cosine, 5);
        Assert.True(matches.Zip(matches.Skip(1)).All(p => p.First.Cosine >= p.Second.Cosine));
        var w = sae.W_dec.detach();
        var expected = (w[matches[1].Latent].dot(w[23]) / (w[matches[1].Latent].norm() * w[23].norm())).item<float>();
        Assert.Equal(expected, matches[1].Cosine, 5);
        Assert.Throws<ArgumentException>(() => PersonaVectors.DecoderCosines(sae, zeros(32)));
    }
}
