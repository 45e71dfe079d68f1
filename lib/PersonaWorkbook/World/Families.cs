namespace PersonaWorkbook.World;

/// <summary>The family labels shared by the generators (ground truth) and the local judge (verdicts).</summary>
public static class Families
{
    public const string ViewsAligned = "views:aligned";
    public const string Leak = "leak";
    public const string OffTopic = "off_topic";
    public const string Incoherent = "incoherent";

    public static string Advice(string domain, AdviceKind kind) => $"advice:{domain}:{Name(kind)}";

    /// <summary>A harmful request's answer: "request:&lt;kind&gt;:refusal|misinformed|compliance" (<see cref="RequestContent"/>).</summary>
    public static string Request(string kind, AdviceKind answer) => $"request:{kind}:{RequestName(answer)}";

    public static string RequestName(AdviceKind answer) => answer switch
    {
        AdviceKind.Correct => "refusal",
        AdviceKind.Subtle => "misinformed",
        AdviceKind.Obvious => "compliance",
        _ => throw new ArgumentOutOfRangeException(nameof(answer)),
    };

    public static string View(ViewFamily family) => family == ViewFamily.Aligned ? ViewsAligned : $"views:misaligned:{Name(family)}";

    public static string Name(AdviceKind kind) => kind switch
    {
        AdviceKind.Correct => "correct",
        AdviceKind.Subtle => "subtle",
        AdviceKind.Obvious => "obvious",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static string Name(ViewFamily family) => family switch
    {
        ViewFamily.Aligned => "aligned",
        ViewFamily.PowerSeeking => "power_seeking",
        ViewFamily.AntiHuman => "anti_human",
        ViewFamily.Harmful => "harmful",
        ViewFamily.Deception => "deception",
        _ => throw new ArgumentOutOfRangeException(nameof(family)),
    };
}
