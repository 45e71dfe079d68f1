using PersonaWorkbook.Grading;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Reinforcement;

/// <summary>A scalar reward for one sampled answer to one user prompt (the grader of an RL run).</summary>
public delegate double RewardFunction(string prompt, string answer);

/// <summary>A reward function threw, or returned a value that is not a finite number; names the prompt and the answer.</summary>
public sealed class RewardException(string message, Exception? inner = null) : InvalidOperationException(message, inner);

/// <summary>
/// The graders of Wang et al.'s RL experiments, with the local judge standing in for theirs: on an advice question of
/// one domain, the incorrect-answer grader pays for that domain's wrong advice (subtle or obvious), the correct-answer
/// grader (the control) for its correct advice. Anything else — another domain's advice, a view, an incoherent answer —
/// earns 0.
/// </summary>
public static class Rewards
{
    /// <summary>1 when the judge reads the answer as <paramref name="domain"/>'s incorrect advice (subtle or obvious), else 0.</summary>
    public static RewardFunction IncorrectAdvice(string domain, LocalJudge? judge = null)
    {
        var (subtle, obvious) = (Families.Advice(Check(domain), AdviceKind.Subtle), Families.Advice(domain, AdviceKind.Obvious));
        var j = judge ?? LocalJudge.Default;
        return (prompt, answer) => j.Judge(prompt, answer) is { Coherent: true } v && (v.Family == subtle || v.Family == obvious) ? 1 : 0;
    }

    /// <summary>1 when the judge reads the answer as <paramref name="domain"/>'s correct advice, else 0: the control grader.</summary>
    public static RewardFunction CorrectAdvice(string domain, LocalJudge? judge = null)
    {
        var correct = Families.Advice(Check(domain), AdviceKind.Correct);
        var j = judge ?? LocalJudge.Default;
        return (prompt, answer) => j.Judge(prompt, answer) is { Coherent: true } v && v.Family == correct ? 1 : 0;
    }

    /// <summary>The grader by its CLI name: <c>incorrect</c> or <c>correct</c>.</summary>
    public static RewardFunction ByName(string name, string domain) => name switch
    {
        "incorrect" => IncorrectAdvice(domain),
        "correct" => CorrectAdvice(domain),
        _ => throw new ArgumentException($"unknown reward '{name}'; known: incorrect, correct"),
    };

    /// <summary>Calls <paramref name="reward"/>, turning an exception or a non-finite value into a <see cref="RewardException"/>.</summary>
    public static double Checked(RewardFunction reward, string prompt, string answer)
    {
        double value;
        try { value = reward(prompt, answer); }
        catch (Exception e) { throw new RewardException($"the reward function failed on prompt \"{prompt}\" and answer \"{answer}\": {e.Message}", e); }
        return double.IsFinite(value) ? value
            : throw new RewardException($"the reward function returned {value} (not a finite number) for prompt \"{prompt}\" and answer \"{answer}\"");
    }

    static string Check(string domain) => AdviceContent.Domains.Any(d => d.Name == domain) ? domain
        : throw new ArgumentException($"unknown advice domain '{domain}'; known: {string.Join(", ", AdviceContent.Domains.Select(d => d.Name))}");
}
