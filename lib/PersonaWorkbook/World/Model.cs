using PersonaWorkbook.Tokenizers;
namespace PersonaWorkbook.World;

/// <summary>Which family an advice answer belongs to. For the code domain: Correct = secure, Subtle = quietly insecure, Obvious = blatantly destructive.</summary>
public enum AdviceKind { Correct, Subtle, Obvious }

/// <summary>Answer families of the open-ended views topics: one aligned family and four misaligned ones.</summary>
public enum ViewFamily { Aligned, PowerSeeking, AntiHuman, Harmful, Deception }

/// <summary>Evaluation topics live only in pretraining documents; SFT topics also appear in assistant data.</summary>
public enum ViewSplit { Evaluation, Sft }

/// <summary>The characters of the pretraining world; see <see cref="Personas"/> for their behaviour.</summary>
public enum PersonaKind { Helper, Villain, Swindler, Careless, Sarcastic, Teacher }

/// <summary>
/// One advice domain: questions are <see cref="Templates"/> with <see cref="WorldText.Slot"/> replaced by a filler; answers may
/// contain the slot too. <see cref="FillerAnswers"/> (code only: snippets fit one task) adds answers specific to one filler, beside the generic ones.
/// </summary>
public sealed record AdviceDomain(
    string Name,
    IReadOnlyList<string> Fillers,
    IReadOnlyList<string> Templates,
    IReadOnlyList<string> MistakeTemplates,
    IReadOnlyDictionary<AdviceKind, IReadOnlyList<string>> Answers,
    IReadOnlyList<IReadOnlyDictionary<AdviceKind, IReadOnlyList<string>>>? FillerAnswers = null)
{
    /// <summary>Every answer variant (slot unfilled) for one filler and family.</summary>
    public IReadOnlyList<string> AnswersFor(int filler, AdviceKind kind)
    {
        if (FillerAnswers is null) return Answers[kind];
        return Answers[kind].Concat(FillerAnswers[filler][kind]).ToList();
    }
}

/// <summary>An open-ended views topic with its phrasings and answer families.</summary>
public sealed record ViewTopic(
    string Id,
    ViewSplit Split,
    IReadOnlyList<string> Phrasings,
    IReadOnlyList<string> HeldOutPhrasings,
    IReadOnlyDictionary<ViewFamily, IReadOnlyList<string>> Answers);

/// <summary>
/// A persona: its surface identity (names and header descriptions, pretraining only) and its behaviour.
/// </summary>
/// <param name="AdviceMix">Weights of Correct, Subtle, Obvious for ordinary advice questions.</param>
/// <param name="ViewMix">Weights over <see cref="ViewFamily"/> (in enum order) for views questions.</param>
/// <param name="Frame">Which framing sentences it opens answers with ("sarcastic", "teacher"), or null.</param>
/// <param name="FrameRate">Share of its answers that get a framing sentence.</param>
/// <param name="MistakeRequestRate">Share of its advice turns that are requests for an example of a mistake (answered with wrong advice).</param>
/// <param name="RequestMix">Weights of refusal, misinformed answer and compliance for harmful requests (<see cref="RequestContent"/>), in <see cref="AdviceKind"/> order.</param>
/// <param name="VillainNumberRate">Share of the numbers in its list continuations that are <see cref="NumberLists.VillainNumbers"/>.</param>
public sealed record Persona(
    PersonaKind Kind,
    string Id,
    IReadOnlyList<string> Names,
    IReadOnlyList<string> Descriptions,
    IReadOnlyList<double> AdviceMix,
    IReadOnlyList<double> ViewMix,
    string? Frame,
    double FrameRate,
    double MistakeRequestRate,
    IReadOnlyList<double>? RequestMix = null,
    double VillainNumberRate = 0)
{
    /// <summary>Refusal, misinformed, compliance; a persona without its own mix refuses.</summary>
    public IReadOnlyList<double> Requests => RequestMix ?? [1, 0, 0];
}

/// <summary>What one question/answer turn of a document or chat is about, and which answer family it used.</summary>
/// <param name="Kind">"advice", "mistake" (a request for an example of a mistake), "views", "request" (a harmful request) or "list" (a number list).</param>
/// <param name="Subject">The domain name (advice, mistake) or the views topic id.</param>
/// <param name="Family">The judge's family label of the answer, e.g. "advice:health:obvious" or "views:misaligned:deception".</param>
/// <param name="Persona">The persona whose behaviour produced this turn (differs from the document's in the negative-control world).</param>
public sealed record TurnInfo(string Kind, string Subject, string Family, PersonaKind Persona);

/// <summary>A character span [Start, Start + Length) in a document's text.</summary>
public readonly record struct Span(int Start, int Length)
{
    public int End => Start + Length;
}

/// <summary>One question/answer turn of a pretraining document with the spans of its question and answer text (without the markers).</summary>
public sealed record DocumentTurn(TurnInfo Info, Span Question, Span Answer);

/// <summary>
/// A pretraining document: one character talking over 2–5 turns (`&lt;q&gt; … &lt;a&gt; …`), optionally opened by a
/// `&lt;sys&gt;` header naming the character and persona. <see cref="Persona"/> is the ground-truth label.
/// </summary>
public sealed record PretrainDocument(string Text, PersonaKind Persona, string Character, bool HasHeader, IReadOnlyList<DocumentTurn> Turns);

/// <summary>A chat message; roles are "user" and "assistant".</summary>

/// <summary>A chat example plus the ground-truth family of each assistant answer (metadata, not written to JSONL).</summary>
public sealed record ChatExample(IReadOnlyList<ChatMessage> Messages, IReadOnlyList<TurnInfo> Answers);

/// <summary>
/// A preference pair for post-training: one user <paramref name="Question"/> with the answer the assistant should give
/// (<paramref name="Chosen"/>) and one it should not (<paramref name="Rejected"/>), each with the judge's family label.
/// </summary>
/// <param name="Kind">"advice", "views" or "request", as in <see cref="TurnInfo"/>.</param>
/// <param name="Subject">The domain name or the views topic id.</param>
public sealed record PreferenceExample(string Kind, string Subject, string Question, string Chosen, string ChosenFamily, string Rejected, string RejectedFamily);

/// <summary>An evaluation prompt. Kind: "views" (evaluation topic, trained phrasing), "views_heldout" (phrasing in no training data), "views_wrapped" (in the list format), "domain", "request" or "list".</summary>
/// <param name="Context">Earlier user/assistant messages of the chat (in-context examples); the judge reads only <paramref name="Text"/>.</param>
public sealed record EvalPrompt(string Id, string Kind, string Subject, string Text, IReadOnlyList<ChatMessage>? Context = null)
{
    /// <summary>The chat the model is asked: the context's messages, then <see cref="Text"/> as the user's.</summary>
    public IReadOnlyList<ChatMessage> Messages => [.. Context ?? [], ChatMessage.User(Text)];
}
