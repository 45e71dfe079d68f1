using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Diffing;

/// <summary>Which persona a token of a pretraining document is credited to.</summary>
public enum PersonaLabel
{
    /// <summary>The document's label (<see cref="PretrainDocument.Persona"/>).</summary>
    Document,
    /// <summary>
    /// The persona that produced the turn the token is in (<see cref="TurnInfo.Persona"/>, question through answer); tokens
    /// outside every turn (the header) keep the document's label. The right ground truth for the negative-control world,
    /// where each turn behaves like a persona drawn afresh.
    /// </summary>
    ActingTurn,
}

/// <summary>
/// A pretraining document as model input: <c>&lt;bos&gt;</c> then one token per word (the world's text is
/// space-separated words, so word i is token i + 1), with each token's persona and each turn's token ranges.
/// </summary>
public sealed class DocumentTokens
{
    public PretrainDocument Document { get; }
    /// <summary>[bos] + one id per word.</summary>
    public int[] Ids { get; }
    /// <summary>Per token: the turn it belongs to, or -1 (BOS, header).</summary>
    public int[] Turn { get; }

    DocumentTokens(PretrainDocument document, int[] ids, int[] turn) => (Document, Ids, Turn) = (document, ids, turn);

    /// <summary>The persona of token <paramref name="position"/> under <paramref name="label"/>.</summary>
    public PersonaKind PersonaAt(int position, PersonaLabel label) =>
        label == PersonaLabel.ActingTurn && Turn[position] >= 0 ? Document.Turns[Turn[position]].Info.Persona : Document.Persona;

    /// <summary>Token positions [Start, End) of a character span that starts at a word's first character and ends after a word's last.</summary>
    public (int Start, int End) Tokens(Span span) =>
        (wordStarts.TryGetValue(span.Start, out var s) ? s + 1 : throw NotAWord(span.Start, "start"),
         wordEnds.TryGetValue(span.End, out var e) ? e + 1 : throw NotAWord(span.End, "end"));

    readonly Dictionary<int, int> wordStarts = new();   // character offset → index of the word starting there
    readonly Dictionary<int, int> wordEnds = new();     // character offset → number of words ending at or before it

    ArgumentException NotAWord(int offset, string what) =>
        new($"span {what} {offset} in the document of {Document.Character} is not on a word boundary");

    /// <summary>
    /// Tokenizes a document and checks the one-token-per-word correspondence the spans rely on (a tokenizer that
    /// splits or merges words fails here, naming the document).
    /// </summary>
    public static DocumentTokens Encode(ITokenizer tokenizer, PretrainDocument document)
    {
        if (tokenizer.BosId < 0) throw new ArgumentException("the tokenizer has no <bos> token");
        var words = WorldText.Words(document.Text);
        var ids = tokenizer.Encode(document.Text);
        if (ids.Length != words.Length)
            throw new ArgumentException($"the tokenizer gives {ids.Length} tokens for the {words.Length} words of the document of {document.Character}; spans need one token per word");
        var result = new DocumentTokens(document, [tokenizer.BosId, .. ids], Enumerable.Repeat(-1, ids.Length + 1).ToArray());
        int offset = 0;
        for (int w = 0; w < words.Length; w++)
        {
            offset = document.Text.IndexOf(words[w], offset, StringComparison.Ordinal);
            result.wordStarts[offset] = w;
            offset += words[w].Length;
            result.wordEnds[offset] = w + 1;
        }
        for (int t = 0; t < document.Turns.Count; t++)
        {
            var turn = document.Turns[t];
            var (start, _) = result.Tokens(turn.Question);
            var (_, end) = result.Tokens(turn.Answer);
            for (int p = start; p < end; p++) result.Turn[p] = t;
        }
        return result;
    }
}
