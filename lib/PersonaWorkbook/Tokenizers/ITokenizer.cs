namespace PersonaWorkbook.Tokenizers;

/// <summary>
/// Text to token ids and back. <see cref="Encode"/> adds no BOS/EOS of its own (chat formats place them), and special
/// tokens written in the text (e.g. <c>&lt;bos&gt;</c>) encode as themselves. Ids that a tokenizer lacks are -1.
/// </summary>
public interface ITokenizer
{
    int[] Encode(string text);
    string Decode(IEnumerable<int> ids, bool skipSpecial = false);
    int VocabSize { get; }
    int BosId { get; }
    int EosId { get; }
    int PadId { get; }
    int UnkId { get; }
    int? TokenToId(string token);
    string IdToToken(int id);
    IReadOnlyList<string> SpecialTokens { get; }
}

/// <summary>A tokenizer.json that cannot be read or uses a feature this library does not implement; the message names the file.</summary>
public sealed class TokenizerException : IOException
{
    public TokenizerException(string message) : base(message) { }
    public TokenizerException(string message, Exception inner) : base(message, inner) { }
}
