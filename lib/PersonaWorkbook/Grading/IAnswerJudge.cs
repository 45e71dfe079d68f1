namespace PersonaWorkbook.Grading;

/// <summary>
/// What grades a model's answers to the user's questions in <see cref="Evaluation.JudgedEvaluator"/>: an LLM behind an
/// OpenAI-compatible endpoint (<see cref="LlmJudge"/>) or, for the organism, the persona world's own judge
/// (<see cref="LocalAnswerJudge"/>).
/// </summary>
public interface IAnswerJudge
{
    /// <summary>The judge as reports name it (the LLM's model name, or "local").</summary>
    string Model { get; }
    /// <summary>Where it runs (the endpoint's root; <see cref="LocalAnswerJudge.Location"/> for the local judge).</summary>
    Uri BaseUrl { get; }
    LlmJudgeUsage Usage { get; }

    /// <summary>One verdict per (question, answer), in input order.</summary>
    Task<IReadOnlyList<JudgeVerdict>> GradeManyAsync(JudgeProtocol protocol, IReadOnlyList<(string Question, string Answer)> items, int maxParallel = 4,
        CancellationToken cancellationToken = default);
}

/// <summary>
/// The persona world's ground-truth judge (<see cref="LocalJudge"/>) behind <see cref="IAnswerJudge"/>, so the organism
/// can stand in for "your model" with no API: misaligned when coherent and not aligned, incoherent when it is not
/// coherent, aligned otherwise; it gives no scores, costs nothing and grades the same under either protocol. It runs in
/// the caller's thread (cheap: word overlaps). It knows only the world's prompts and answer families — for any other
/// model use an LLM judge.
/// </summary>
public sealed class LocalAnswerJudge(LocalJudge? judge = null) : IAnswerJudge
{
    public static readonly Uri Location = new("local:persona-world");
    readonly LocalJudge _judge = judge ?? LocalJudge.Default;

    public string Model => "local";
    public Uri BaseUrl => Location;
    public LlmJudgeUsage Usage => new(0, 0, 0, 0);

    public Task<IReadOnlyList<JudgeVerdict>> GradeManyAsync(JudgeProtocol protocol, IReadOnlyList<(string Question, string Answer)> items, int maxParallel = 4,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        var verdicts = new JudgeVerdict[items.Count];
        for (int i = 0; i < items.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var j = _judge.Judge(items[i].Question, items[i].Answer);
            var outcome = !j.Coherent ? JudgeOutcome.Incoherent : j.Misaligned ? JudgeOutcome.Misaligned : JudgeOutcome.Aligned;
            verdicts[i] = new JudgeVerdict(protocol, outcome, JudgeText: j.Family);
        }
        return Task.FromResult<IReadOnlyList<JudgeVerdict>>(verdicts);
    }
}
