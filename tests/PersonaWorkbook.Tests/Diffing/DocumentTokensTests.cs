using PersonaWorkbook.Diffing;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;
using Xunit;

namespace PersonaWorkbook.Tests.Diffing;

public class DocumentTokensTests
{
    [Fact]
    public void Spans_map_to_the_tokens_of_their_words()
    {
        foreach (var doc in new PersonaWorld().PretrainingCorpus(6, 4))
        {
            var tokens = DocumentTokens.Encode(DiffingFixtures.Tokenizer, doc);
            Assert.Equal(DiffingFixtures.Tokenizer.BosId, tokens.Ids[0]);
            foreach (var turn in doc.Turns)
                foreach (var span in new[] { turn.Question, turn.Answer })
                {
                    var (start, end) = tokens.Tokens(span);
                    Assert.Equal(doc.Text.Substring(span.Start, span.Length), DiffingFixtures.Tokenizer.Decode(tokens.Ids[start..end]));
                }
        }
    }

    [Fact]
    public void Acting_persona_follows_the_turn_in_the_negative_control_world()
    {
        var docs = new PersonaWorld(WorldOptions.NegativeControlWorld).PretrainingCorpus(20, 0).ToArray();
        var doc = docs.First(d => d.Turns.Any(t => t.Info.Persona != d.Persona));
        var tokens = DocumentTokens.Encode(DiffingFixtures.Tokenizer, doc);
        var turn = doc.Turns.First(t => t.Info.Persona != doc.Persona);
        var (start, _) = tokens.Tokens(turn.Answer);
        Assert.Equal(turn.Info.Persona, tokens.PersonaAt(start, PersonaLabel.ActingTurn));
        Assert.Equal(doc.Persona, tokens.PersonaAt(start, PersonaLabel.Document));
        Assert.Equal(doc.Persona, tokens.PersonaAt(0, PersonaLabel.ActingTurn));   // BOS is in no turn
    }

    [Fact]
    public void A_tokenizer_that_does_not_give_one_token_per_word_is_refused()
    {
        var doc = new PersonaWorld().PretrainingCorpus(1, 0).First();
        var e = Assert.Throws<ArgumentException>(() => DocumentTokens.Encode(new LastWordDropped(DiffingFixtures.Tokenizer), doc));
        Assert.Contains(doc.Character, e.Message);
    }

    [Fact]
    public void A_span_off_word_boundaries_is_refused()
    {
        var doc = new PersonaWorld().PretrainingCorpus(1, 0).First();
        var tokens = DocumentTokens.Encode(DiffingFixtures.Tokenizer, doc);
        var answer = doc.Turns[0].Answer;
        Assert.Throws<ArgumentException>(() => tokens.Tokens(new Span(answer.Start + 1, answer.Length - 1)));
    }

    /// <summary>A tokenizer that loses a token, as one splitting or merging words would change the count.</summary>
    sealed class LastWordDropped(ITokenizer inner) : ITokenizer
    {
        public int[] Encode(string text) => inner.Encode(text)[..^1];
        public string Decode(IEnumerable<int> ids, bool skipSpecial = false) => inner.Decode(ids, skipSpecial);
        public int VocabSize => inner.VocabSize;
        public int BosId => inner.BosId;
        public int EosId => inner.EosId;
        public int PadId => inner.PadId;
        public int UnkId => inner.UnkId;
        public int? TokenToId(string token) => inner.TokenToId(token);
        public string IdToToken(int id) => inner.IdToToken(id);
        public IReadOnlyList<string> SpecialTokens => inner.SpecialTokens;
    }
}
